// Package java replaces the Java code generator of the same import
// path when scripts/toolchain.sh builds the docker-build provider offline.
// The provider imports that package only to describe its Java SDK in the
// "language" section of its schema, and the module that holds it is not
// served by the module proxy this project can reach. This stand-in declares
// just the one type the provider uses, with field names and JSON keys chosen
// so that the schema the provider reports matches the schema.json published
// with the provider (basePackage and gradleTest are always present there).
package java

// PackageInfo is the Java entry of a schema's "language" section.
type PackageInfo struct {
	BasePackage                     string            `json:"basePackage"`
	BuildFiles                      string            `json:"buildFiles,omitempty"`
	Dependencies                    map[string]string `json:"dependencies,omitempty"`
	GradleNexusPublishPluginVersion string            `json:"gradleNexusPublishPluginVersion,omitempty"`
	GradleTest                      string            `json:"gradleTest"`
}

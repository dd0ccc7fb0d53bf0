// Package codegen replaces the .NET code generator of the same import
// path when scripts/toolchain.sh builds the docker-build provider offline.
// The provider imports that package only to describe its .NET SDK in the
// "language" section of its schema, and the module that holds it is not
// served by the module proxy this project can reach. This stand-in declares
// just the one type the provider uses, with JSON keys chosen so that the
// schema the provider reports matches the schema.json published with the
// provider.
package codegen

// CSharpPackageInfo is the C# entry of a schema's "language" section.
type CSharpPackageInfo struct {
	PackageReferences    map[string]string `json:"packageReferences,omitempty"`
	RespectSchemaVersion bool              `json:"respectSchemaVersion,omitempty"`
}

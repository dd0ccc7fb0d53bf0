// Command pulumi-language-python is a small Python language host for the
// Pulumi CLI. scripts/toolchain.sh builds it only on its offline path, because
// the official release tarball ships Pulumi's own host. The Go module that
// contains that host's source is not served by the module proxy this project
// can reach, so without this file the CLI built from the proxy could not run
// Python programs.
//
// It is compiled in the same throwaway module as the CLI, against the same
// github.com/pulumi/pulumi/sdk/v3 version, and it leans on that SDK's Python
// toolchain package for everything that touches pip, uv, poetry or virtual
// environments. What it adds is the gRPC surface the engine calls during
// preview, update, destroy, install and about:
//
//   - Run starts pulumi-language-python-exec (shipped next to this binary,
//     taken from the Python SDK folder of the same sdk/v3 module) under the
//     project's interpreter, with the engine's settings as flags and the stack
//     configuration in PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS, the
//     variables the Python SDK reads.
//   - GetRequiredPackages and GetRequiredPlugins report every installed Python
//     distribution that carries a pulumi-plugin.json with "resource": true, so
//     the engine knows which provider plugins the program will load.
//   - InstallDependencies, About and GetProgramDependencies forward to the
//     toolchain package.
//
// Not provided: running Python plugins or policy packs (RunPlugin), code
// generation, packing and linking, and debugger attachment. Those calls fail
// with a clear error instead of doing something partial.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// execScriptName is the Python launcher that configures the Pulumi runtime
// from command-line flags and then runs the user's program.
const execScriptName = "pulumi-language-python-exec"

// bailExitCode is the status the Python SDK exits with after it has already
// shown the user an error. RunResponse.Bail then tells the engine to stop
// without adding a second, less useful message.
const bailExitCode = 32

// pluginScanScript prints, as a JSON list, the pulumi-plugin.json of every
// installed distribution that has one at the top of one of its packages. The
// distribution's own version is added so a file without a version can still
// be pinned.
const pluginScanScript = `
import json, sys
from importlib import metadata
found = []
for dist in metadata.distributions():
    for entry in dist.files or ():
        if entry.name != "pulumi-plugin.json" or len(entry.parts) != 2:
            continue
        try:
            data = json.loads(dist.locate_file(entry).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            data["distributionVersion"] = dist.version
            found.append(data)
json.dump(found, sys.stdout)
`

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	execScript    string
	engineAddress string
}

func main() {
	// The engine passes its own address as the only positional argument.
	// -tracing is accepted because older engines passed it; it is ignored.
	flag.String("tracing", "", "ignored; accepted for compatibility with older engines")
	flag.Parse()
	engineAddress := flag.Arg(0)

	self, err := os.Executable()
	if err != nil {
		fail(fmt.Errorf("locating this executable: %w", err))
	}
	execScript := filepath.Join(filepath.Dir(self), execScriptName)
	if _, err := os.Stat(execScript); err != nil {
		fail(fmt.Errorf("missing %s next to the language host: %w", execScriptName, err))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if engineAddress != "" {
		// Exit on our own if the engine goes away without telling us.
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			fail(fmt.Errorf("starting the engine health check: %w", err))
		}
	}
	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()

	host := &languageHost{execScript: execScript, engineAddress: engineAddress}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		fail(fmt.Errorf("starting the gRPC server: %w", err))
	}

	// The engine reads the port from the first line of standard output.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		fail(fmt.Errorf("gRPC server stopped: %w", err))
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

// programOptions holds the runtime.options of Pulumi.yaml that this host
// understands.
type programOptions struct {
	virtualenv  string
	toolchain   string
	typechecker string
}

func readOptions(info *pulumirpc.ProgramInfo) (programOptions, error) {
	var opts programOptions
	raw := info.GetOptions().AsMap()
	for key, target := range map[string]*string{
		"virtualenv":  &opts.virtualenv,
		"toolchain":   &opts.toolchain,
		"typechecker": &opts.typechecker,
	} {
		value, ok := raw[key]
		if !ok || value == nil {
			continue
		}
		text, ok := value.(string)
		if !ok {
			return opts, fmt.Errorf("runtime option %q must be a string, got %T", key, value)
		}
		*target = text
	}
	return opts, nil
}

// resolveToolchain maps the program's runtime options onto the SDK's
// toolchain package, which handles the virtual environment layouts of pip,
// uv and poetry.
func resolveToolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, programOptions, error) {
	opts, err := readOptions(info)
	if err != nil {
		return nil, opts, err
	}
	pyOpts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Virtualenv: opts.virtualenv,
	}
	switch strings.ToLower(opts.toolchain) {
	case "", "auto":
		pyOpts.Toolchain = toolchain.Auto
	case "pip":
		pyOpts.Toolchain = toolchain.Pip
	case "poetry":
		pyOpts.Toolchain = toolchain.Poetry
	case "uv":
		pyOpts.Toolchain = toolchain.Uv
	default:
		return nil, opts, fmt.Errorf("unknown Python toolchain %q (expected pip, poetry or uv)", opts.toolchain)
	}
	switch strings.ToLower(opts.typechecker) {
	case "":
		pyOpts.Typechecker = toolchain.TypeCheckerNone
	case "mypy":
		pyOpts.Typechecker = toolchain.TypeCheckerMypy
	case "pyright":
		pyOpts.Typechecker = toolchain.TypeCheckerPyright
	default:
		return nil, opts, fmt.Errorf("unknown Python type checker %q (expected mypy or pyright)", opts.typechecker)
	}
	tc, err := toolchain.ResolveToolchain(pyOpts)
	if err != nil {
		return nil, opts, err
	}
	return tc, opts, nil
}

func (h *languageHost) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	// Every later request carries the program's directories, so nothing from
	// the handshake needs to be kept.
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(ctx context.Context, _ *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *languageHost) Cancel(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	// A running program is stopped by the engine closing its monitor, so
	// there is nothing extra to do here.
	return &emptypb.Empty{}, nil
}

func (h *languageHost) RuntimeOptionsPrompts(
	ctx context.Context, req *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	// No questions for `pulumi new`: the defaults (pip, no virtualenv unless
	// the template sets one) apply.
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *languageHost) Template(
	ctx context.Context, req *pulumirpc.TemplateRequest,
) (*pulumirpc.TemplateResponse, error) {
	// Templates are used as they are written.
	return &pulumirpc.TemplateResponse{}, nil
}

// pluginRecord is one pulumi-plugin.json as printed by pluginScanScript.
type pluginRecord struct {
	Resource            bool                    `json:"resource"`
	Name                string                  `json:"name"`
	Version             string                  `json:"version"`
	Server              string                  `json:"server"`
	Parameterization    *parameterizationRecord `json:"parameterization"`
	DistributionVersion string                  `json:"distributionVersion"`
}

type parameterizationRecord struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Value is base64 in the file; encoding/json decodes it into bytes.
	Value []byte `json:"value"`
}

// scanPlugins lists the resource plugins that the program's installed
// packages declare.
func scanPlugins(ctx context.Context, info *pulumirpc.ProgramInfo) ([]pluginRecord, error) {
	tc, _, err := resolveToolchain(info)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}

	cmd, err := tc.Command(ctx, "-c", pluginScanScript)
	if err != nil {
		return nil, err
	}
	cmd.Dir = info.GetProgramDirectory()
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return nil, fmt.Errorf("listing installed Pulumi packages: %w: %s", err, strings.TrimSpace(string(exitErr.Stderr)))
		}
		return nil, fmt.Errorf("listing installed Pulumi packages: %w", err)
	}

	var records []pluginRecord
	if err := json.Unmarshal(out, &records); err != nil {
		return nil, fmt.Errorf("reading the list of installed Pulumi packages: %w", err)
	}

	var plugins []pluginRecord
	for _, rec := range records {
		if !rec.Resource || rec.Name == "" {
			continue
		}
		if rec.Version == "" {
			// Python versions such as 1.2.3a4 are not semver; only use the
			// distribution's version when the engine can read it.
			if _, err := semver.ParseTolerant(rec.DistributionVersion); err != nil {
				continue
			}
			rec.Version = rec.DistributionVersion
		}
		if !strings.HasPrefix(rec.Version, "v") {
			rec.Version = "v" + rec.Version
		}
		plugins = append(plugins, rec)
	}
	return plugins, nil
}

func (h *languageHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	plugins, err := scanPlugins(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, p := range plugins {
		dep := &pulumirpc.PackageDependency{
			Kind:    "resource",
			Name:    p.Name,
			Version: p.Version,
			Server:  p.Server,
		}
		if p.Parameterization != nil {
			dep.Parameterization = &pulumirpc.PackageParameterization{
				Name:    p.Parameterization.Name,
				Version: p.Parameterization.Version,
				Value:   p.Parameterization.Value,
			}
		}
		resp.Packages = append(resp.Packages, dep)
	}
	return resp, nil
}

func (h *languageHost) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	plugins, err := scanPlugins(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, p := range plugins {
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Kind:    "resource",
			Name:    p.Name,
			Version: p.Version,
			Server:  p.Server,
		})
	}
	return resp, nil
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if req.GetAttachDebugger() {
		return nil, status.Error(codes.Unimplemented, "this Python language host cannot attach a debugger")
	}
	info := req.GetInfo()
	tc, opts, err := resolveToolchain(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	if opts.typechecker != "" {
		if msg := typecheck(ctx, tc, opts.typechecker, info.GetProgramDirectory()); msg != "" {
			return &pulumirpc.RunResponse{Error: msg}, nil
		}
	}

	// The Python SDK expects a JSON object here even when the stack has no
	// configuration; a nil map would encode as null.
	config := req.GetConfig()
	if config == nil {
		config = map[string]string{}
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("encoding the stack configuration: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("encoding the secret configuration keys: %w", err)
	}

	program := req.GetProgram()
	if program == "" {
		// "." makes the launcher run __main__.py from the program folder.
		program = "."
	}
	args := []string{"-u", h.execScript}
	addFlag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	addFlag("monitor", req.GetMonitorAddress())
	addFlag("engine", h.engineAddress)
	addFlag("project", req.GetProject())
	addFlag("stack", req.GetStack())
	addFlag("pwd", req.GetPwd())
	addFlag("dry_run", strconv.FormatBool(req.GetDryRun()))
	addFlag("parallel", strconv.Itoa(int(req.GetParallel())))
	addFlag("organization", req.GetOrganization())
	addFlag("root_directory", info.GetRootDirectory())
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("preparing the Python command: %v", err)}, nil
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env,
		"PULUMI_CONFIG="+string(configJSON),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretKeysJSON),
	)
	// The engine shows whatever the language host writes, so the program's
	// output goes straight through.
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr

	runErr := cmd.Run()
	_ = os.Stdout.Sync()
	_ = os.Stderr.Sync()
	if runErr == nil {
		return &pulumirpc.RunResponse{}, nil
	}
	var exitErr *exec.ExitError
	if errors.As(runErr, &exitErr) {
		if exitErr.ExitCode() == bailExitCode {
			return &pulumirpc.RunResponse{Bail: true}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Python program exited with code %d", exitErr.ExitCode()),
		}, nil
	}
	return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not start Python: %v", runErr)}, nil
}

// typecheck runs the configured type checker over the program folder and
// returns an error message when it reports problems. Its own output goes to
// the engine like the program's.
func typecheck(ctx context.Context, tc toolchain.Toolchain, checker, dir string) string {
	var cmd *exec.Cmd
	var err error
	switch strings.ToLower(checker) {
	case "mypy":
		cmd, err = tc.ModuleCommand(ctx, "mypy", ".")
	case "pyright":
		cmd, err = tc.ModuleCommand(ctx, "pyright")
	default:
		return fmt.Sprintf("unknown Python type checker %q", checker)
	}
	if err != nil {
		return fmt.Sprintf("preparing the %s command: %v", checker, err)
	}
	cmd.Dir = dir
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("%s reported errors or could not run (is it installed in the virtual environment?): %v", checker, err)
	}
	return ""
}

// streamWriter turns writes into InstallDependencies responses. pip, uv and
// poetry write from two goroutines (stdout and stderr), hence the lock.
type streamWriter struct {
	mu     *sync.Mutex
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	chunk := append([]byte(nil), p...)
	resp := &pulumirpc.InstallDependenciesResponse{Stdout: chunk}
	if w.stderr {
		resp = &pulumirpc.InstallDependenciesResponse{Stderr: chunk}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.stream.Send(resp); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest,
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	ctx := stream.Context()
	tc, _, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return err
	}
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetDirectory()
	}
	var mu sync.Mutex
	var stdout, stderr io.Writer = streamWriter{mu: &mu, stream: stream}, streamWriter{mu: &mu, stream: stream, stderr: true}
	if err := tc.InstallDependencies(ctx, dir, req.GetUseLanguageVersionTools(), true, stdout, stderr); err != nil {
		return err
	}
	if req.GetIsPlugin() {
		return tc.InstallPackage(ctx, dir, req.GetUseLanguageVersionTools(), true, stdout, stderr)
	}
	return nil
}

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, opts, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	about, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{"languageHost": "base-images fallback (scripts/python-langhost)"}
	if opts.toolchain != "" {
		meta["toolchain"] = opts.toolchain
	}
	if about.ToolchainVersion.String() != "0.0.0" {
		meta["toolchainVersion"] = about.ToolchainVersion.String()
	}
	return &pulumirpc.AboutResponse{
		Executable: about.PythonExecutable,
		Version:    about.PythonVersion.String(),
		Metadata:   meta,
	}, nil
}

func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, _, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, d := range deps {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return resp, nil
}

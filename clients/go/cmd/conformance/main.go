// Command conformance is the Go leg of the three-language conformance test
// (tests/clients/test_conformance.py). Its command line, environment and output are the
// contract every language's scenario program follows (docs/clients.md, "Conformance"):
//
//	conformance run MODEL SOURCE_DIR DEST_DIR
//	conformance pull VERSION_REF DEST_DIR
//
// Both print one JSON line on stdout and exit 0, or print the error on stderr and exit 1.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1"
	"github.com/modelreg/modelreg/clients/go/modelreg"
)

// The scenario's fixed inputs: the same in every language.
var (
	scenarioParams  = map[string]any{"learning_rate": 0.001, "layers": []any{64.0, 32.0}, "optimizer": map[string]any{"name": "adam"}}
	scenarioMetrics = map[string]float64{"accuracy": 0.93, "loss": 0.12}
)

const (
	movedAlias     = "staging"
	protectedAlias = "production"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	client, err := modelreg.DialFromEnv()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := context.Background()
	switch {
	case len(args) == 4 && args[0] == "run":
		return scenario(ctx, client, args[1], args[2], args[3])
	case len(args) == 3 && args[0] == "pull":
		result, err := client.Pull(ctx, args[1], args[2], modelreg.PullOptions{})
		if err != nil {
			return err
		}
		pulled, err := digests(args[2], result.Version)
		if err != nil {
			return err
		}
		return emit(map[string]any{"language": "go", "model_version": result.Version.GetName(), "pulled": pulled})
	}
	return errors.New("usage: conformance run MODEL SOURCE_DIR DEST_DIR | conformance pull VERSION_REF DEST_DIR")
}

func scenario(ctx context.Context, client *modelreg.Client, model, source, dest string) error {
	pushed, err := client.Push(ctx, model, source, modelreg.PushOptions{
		Description: "conformance go", Params: scenarioParams, Metrics: scenarioMetrics, Alias: movedAlias,
	})
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	resumed := 0
	files := map[string]any{}
	for _, f := range pushed.Files {
		resumed += f.ResumedStreams
		files[f.Path] = map[string]any{"sha256": f.SHA256, "size_bytes": f.SizeBytes}
	}
	result, err := client.Pull(ctx, model+"@"+movedAlias, dest, modelreg.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	pulled, err := digests(dest, result.Version)
	if err != nil {
		return err
	}
	version := pushed.Version
	modelName := filepath.Dir(filepath.Dir(version.GetName()))
	aliasName := modelName + "/aliases/" + protectedAlias
	if _, err := client.Metadata.ProtectAlias(ctx, &v1.ProtectAliasRequest{Protection: &v1.AliasProtection{Name: aliasName}}); err != nil {
		return fmt.Errorf("protect alias: %w", err)
	}
	_, refused := client.Metadata.SetAlias(ctx, &v1.SetAliasRequest{Name: aliasName, ModelVersion: version.GetName()})
	var failed *modelreg.Error
	if !errors.As(refused, &failed) {
		return fmt.Errorf("moving the protected alias was not refused with a status: %v", refused)
	}
	return emit(map[string]any{
		"language":               "go",
		"model_version":          version.GetName(),
		"alias":                  movedAlias,
		"params":                 version.GetParams().AsMap(),
		"metrics":                version.GetMetrics(),
		"files":                  files,
		"resumed_streams":        resumed,
		"pulled_model_version":   result.Version.GetName(),
		"pulled":                 pulled,
		"protected_alias_code":   modelreg.CodeName(failed.Code),
		"protected_alias_reason": failed.Reason,
	})
}

// digests hashes the pulled files on disk again: the contract reports what is there, not what
// the client believes it wrote.
func digests(dir string, version *v1.ModelVersion) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range version.GetFiles() {
		file, err := os.Open(filepath.Join(dir, filepath.FromSlash(f.GetPath())))
		if err != nil {
			return nil, err
		}
		hasher := sha256.New()
		_, err = io.Copy(hasher, file)
		file.Close()
		if err != nil {
			return nil, err
		}
		out[f.GetPath()] = hex.EncodeToString(hasher.Sum(nil))
	}
	return out, nil
}

func emit(value map[string]any) error {
	line, err := json.Marshal(value)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(line))
	return err
}

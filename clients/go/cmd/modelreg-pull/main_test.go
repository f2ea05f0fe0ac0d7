package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelreg/modelreg/clients/go/modelreg"
)

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{}, {"only-one"}, {"not a ref", "dir"}, {"-nope", "a/b@c", "dir"}} {
		if code := run(args); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
}

// The documented exit codes against the live registry (skipped without one: see
// modelreg/live_test.go).
func TestLiveExitCodes(t *testing.T) {
	for _, name := range []string{modelreg.MetadataAddrEnv, modelreg.ArtifactAddrEnv, modelreg.TokenEnv} {
		if os.Getenv(name) == "" {
			t.Skipf("%s is not set: no registry to test against", name)
		}
	}
	client, err := modelreg.DialFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	source := t.TempDir()
	weights := make([]byte, 300<<10)
	_, _ = rand.Read(weights)
	if err := os.WriteFile(filepath.Join(source, "weights.bin"), weights, 0o644); err != nil {
		t.Fatal(err)
	}
	var raw [5]byte
	_, _ = rand.Read(raw[:])
	model := "goclient/pull-" + hex.EncodeToString(raw[:])
	if _, err := client.Push(context.Background(), model, source, modelreg.PushOptions{Alias: "production"}); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if code := run([]string{model + "@production", dest}); code != 0 {
		t.Fatalf("pull: exit %d", code)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "weights.bin")); string(got) != string(weights) {
		t.Fatal("pulled bytes differ")
	}
	if code := run([]string{model + "@production", dest}); code != 0 {
		t.Fatalf("a second pull into the same directory: exit %d", code)
	}
	if err := os.WriteFile(filepath.Join(dest, "weights.bin"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{model + "@production", dest}); code != 4 {
		t.Fatalf("other content in the way: exit %d, want 4 (conflict)", code)
	}
	if code := run([]string{"-force", model + "@production", dest}); code != 0 {
		t.Fatalf("-force: exit %d", code)
	}
	if code := run([]string{model + "@absent", t.TempDir()}); code != 3 {
		t.Fatalf("an absent alias: exit %d, want 3 (not found)", code)
	}
	t.Setenv(modelreg.TokenEnv, "not-a-token")
	if code := run([]string{model + "@production", t.TempDir()}); code != 8 {
		t.Fatalf("a bad credential: exit %d, want 8 (not authenticated)", code)
	}
	t.Setenv(modelreg.TokenEnv, "")
	t.Setenv(modelreg.TokenFileEnv, filepath.Join(t.TempDir(), "missing"))
	if code := run([]string{model + "@production", t.TempDir()}); code != 8 {
		t.Fatalf("an unreadable token file: exit %d, want 8", code)
	}
}

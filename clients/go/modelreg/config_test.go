package modelreg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestIsLoopback(t *testing.T) {
	for address, want := range map[string]bool{
		"127.0.0.1:50051": true, "localhost:1": true, "[::1]:5": true, "127.0.0.1:1,127.0.0.2:2": true,
		"ipv4:127.0.0.1:1,127.0.0.1:2": true, "10.0.0.1:50051": false, "registry.example.com:443": false,
		"0.0.0.0:1": false, "dns:///registry:50051": false, "127.0.0.1:1,10.0.0.1:2": false,
	} {
		if IsLoopback(address) != want {
			t.Errorf("IsLoopback(%q) = %v", address, !want)
		}
	}
}

func TestCredentialSources(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(DataDirEnv, dir)
	t.Setenv(TokenFileEnv, "")
	t.Setenv(TokenEnv, " mrt_abc_secret \n")
	token, source, err := findCredential("10.1.2.3:50051")
	if err != nil || token != "mrt_abc_secret" || source != TokenEnv {
		t.Fatalf("MODELREG_TOKEN: %q %q %v", token, source, err)
	}
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(TokenEnv, "")
	t.Setenv(TokenFileEnv, file)
	if token, _, err = findCredential("10.1.2.3:50051"); err != nil || token != "from-file" {
		t.Fatalf("MODELREG_TOKEN_FILE: %q %v", token, err)
	}
	// Set but unusable is an error, never a step to the next source.
	t.Setenv(TokenFileEnv, filepath.Join(dir, "missing"))
	if _, _, err = findCredential("127.0.0.1:1"); Reason(err) != "UNREADABLE_CREDENTIAL" {
		t.Fatalf("unreadable file: %v", err)
	}
	t.Setenv(TokenFileEnv, "")
	t.Setenv(TokenEnv, "two words")
	if _, _, err = findCredential("127.0.0.1:1"); Reason(err) != "MALFORMED_CREDENTIAL" {
		t.Fatalf("malformed token: %v", err)
	}
	// The local admin credential only for a loopback address.
	t.Setenv(TokenEnv, "")
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("admin-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if token, _, _ = findCredential("127.0.0.1:50051"); token != "admin-secret" {
		t.Fatalf("loopback admin token: %q", token)
	}
	if token, _, _ = findCredential("10.1.2.3:50051"); token != "" {
		t.Fatalf("the local admin token went to another machine: %q", token)
	}
}

func TestRetryingRetriesOnlyUnavailable(t *testing.T) {
	policy := RetryPolicy{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Multiplier: 2}
	calls := 0
	err := retrying(context.Background(), policy, func(context.Context) error {
		calls++
		return &Error{Code: codes.Unavailable}
	})
	if calls != 3 || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("UNAVAILABLE: %d calls, %v", calls, err)
	}
	calls = 0
	err = retrying(context.Background(), policy, func(context.Context) error {
		calls++
		if calls == 1 {
			return &Error{Code: codes.Unavailable}
		}
		return &Error{Code: codes.FailedPrecondition}
	})
	if calls != 2 || !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("an answer is not retried: %d calls, %v", calls, err)
	}
	if DefaultRetryPolicy.Backoff(1) != 200*time.Millisecond || DefaultRetryPolicy.Backoff(10) != 5*time.Second {
		t.Fatal("backoff doubles from 0.2 s to at most 5 s")
	}
}

func TestChunkBytesStayWithinTheProtocol(t *testing.T) {
	for _, asked := range []int{1, 10 << 20, 0} {
		got := Config{ChunkBytes: asked}.withDefaults().ChunkBytes
		if got < MinChunkBytes || got > MaxChunkBytes {
			t.Errorf("ChunkBytes %d became %d", asked, got)
		}
	}
}

// Every data message but the last is a full chunk, so none is under the 64 KiB floor, and the
// offsets continue exactly where the previous message ended.
func TestSendFileMessages(t *testing.T) {
	source := filepath.Join(t.TempDir(), "blob")
	size := 3*MiB + 12345
	if err := os.WriteFile(source, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	client := &Client{cfg: Config{ChunkBytes: MiB}.withDefaults()}
	var sizes []int
	next := int64(MiB)
	end, err := client.sendFile(context.Background(), LocalFile{Source: source}, MiB, func(offset int64, data []byte) error {
		if offset != next {
			t.Fatalf("offset %d, want %d", offset, next)
		}
		next += int64(len(data))
		sizes = append(sizes, len(data))
		return nil
	})
	if err != nil || end != int64(size) {
		t.Fatalf("end %d, %v", end, err)
	}
	if len(sizes) != 3 || sizes[0] != MiB || sizes[1] != MiB || sizes[2] != 12345 {
		t.Fatalf("message sizes %v", sizes)
	}
}

package modelreg_test

// Live tests against a running registry. tests/clients/test_go_client.py runs them against the
// pytest session's stack with its addresses and a credential in the environment; they skip
// only when those variables are absent (a plain `go test` on a developer's machine).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	v1 "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1"
	"github.com/modelreg/modelreg/clients/go/modelreg"
)

// CutArtifactAddrEnv names a loopback proxy in front of the artifact service that resets every
// connection after so many bytes (tests/integration/cutting_proxy.py); KillArtifactAddrEnv
// another one, which resets the connection once, after 40 MiB.
const (
	CutArtifactAddrEnv  = "MODELREG_TEST_CUT_ARTIFACT_ADDR"
	KillArtifactAddrEnv = "MODELREG_TEST_KILL_ARTIFACT_ADDR"
)

func liveConfig(t *testing.T) modelreg.Config {
	t.Helper()
	for _, name := range []string{modelreg.MetadataAddrEnv, modelreg.ArtifactAddrEnv, modelreg.TokenEnv} {
		if os.Getenv(name) == "" {
			t.Skipf("%s is not set: no registry to test against (tests/clients/test_go_client.py sets it)", name)
		}
	}
	cfg, err := modelreg.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func dial(t *testing.T, cfg modelreg.Config) *modelreg.Client {
	t.Helper()
	client, err := modelreg.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func uniqueModel(prefix string) string {
	var raw [5]byte
	_, _ = rand.Read(raw[:])
	return "goclient/" + prefix + "-" + hex.EncodeToString(raw[:])
}

// writeRandom writes files of the given sizes under dir and returns their contents.
func writeRandom(t *testing.T, dir string, sizes map[string]int) map[string][]byte {
	t.Helper()
	contents := map[string][]byte{}
	for path, size := range sizes {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		target := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			t.Fatal(err)
		}
		contents[path] = data
	}
	return contents
}

func assertPulled(t *testing.T, dir string, contents map[string][]byte) {
	t.Helper()
	for path, want := range contents {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: pulled bytes differ from the pushed ones", path)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, modelreg.StagingDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the staging directory was left behind: %v", err)
	}
}

func TestLivePushAndPullByAlias(t *testing.T) {
	client := dial(t, liveConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	source := t.TempDir()
	// A small file goes up in one UploadFile stream, the large one through a resumable session.
	contents := writeRandom(t, source, map[string]int{"config.json": 100 << 10, "weights/model.bin": 12 << 20})
	model := uniqueModel("push")
	pushed, err := client.Push(ctx, model, source, modelreg.PushOptions{
		Params: map[string]any{"lr": 0.01, "layers": []any{8.0, 4.0}}, Metrics: map[string]float64{"auc": 0.91}, Alias: "candidate",
	})
	if err != nil {
		t.Fatal(err)
	}
	version := pushed.Version
	if version.GetState() != v1.ModelVersionState_MODEL_VERSION_STATE_READY || len(version.GetFiles()) != 2 {
		t.Fatalf("pushed version %v", version)
	}
	if version.GetMetrics()["auc"] != 0.91 || version.GetParams().AsMap()["lr"] != 0.01 {
		t.Fatalf("params/metrics %v %v", version.GetParams(), version.GetMetrics())
	}
	for _, f := range pushed.Files {
		if f.Outcome != modelreg.OutcomeUploaded || f.TransferredBytes != f.SizeBytes {
			t.Fatalf("first push of %s: %+v", f.Path, f)
		}
	}
	dest := t.TempDir()
	pulled, err := client.Pull(ctx, model+"@candidate", dest, modelreg.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Version.GetName() != version.GetName() {
		t.Fatalf("the alias resolved to %s, not %s", pulled.Version.GetName(), version.GetName())
	}
	assertPulled(t, dest, contents)

	// The same content again: recorded from the stored blobs, no byte sent.
	again, err := client.Push(ctx, model, source, modelreg.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range again.Files {
		if f.Outcome != modelreg.OutcomeDeduplicated || f.TransferredBytes != 0 {
			t.Fatalf("second push of %s: %+v", f.Path, f)
		}
	}
	// A second pull into the same directory keeps the verified files as they are.
	repeat, err := client.Pull(ctx, version.GetName(), dest, modelreg.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range repeat.Files {
		if f.Outcome != modelreg.OutcomeKept {
			t.Fatalf("repeat pull of %s: %+v", f.Path, f)
		}
	}
}

func TestLivePullRefusesWhatIsInTheWay(t *testing.T) {
	client := dial(t, liveConfig(t))
	ctx := context.Background()
	source := t.TempDir()
	contents := writeRandom(t, source, map[string]int{"a.bin": 70 << 10})
	model := uniqueModel("way")
	pushed, err := client.Push(ctx, model, source, modelreg.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	mine := filepath.Join(dest, "a.bin")
	if err := os.WriteFile(mine, []byte("my own work"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = client.Pull(ctx, pushed.Version.GetName(), dest, modelreg.PullOptions{})
	var refused *modelreg.Error
	if !errors.As(err, &refused) || refused.Reason != "DESTINATION_NOT_EMPTY" || len(refused.Paths) != 1 {
		t.Fatalf("pull over a different file: %v", err)
	}
	if got, _ := os.ReadFile(mine); string(got) != "my own work" {
		t.Fatal("a refused pull changed the file in the way")
	}
	if _, err := client.Pull(ctx, pushed.Version.GetName(), dest, modelreg.PullOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	assertPulled(t, dest, contents)
}

// A proxy resets the connection twice during the upload: the client continues the session from
// the service's committed_size each time, and the pulled bytes are the pushed ones.
func TestLiveUploadResumesAfterCutConnections(t *testing.T) {
	cfg := liveConfig(t)
	if os.Getenv(CutArtifactAddrEnv) == "" {
		t.Skipf("%s is not set: no cutting proxy (tests/clients/test_go_client.py starts one)", CutArtifactAddrEnv)
	}
	direct := dial(t, cfg)
	cut := cfg
	cut.ArtifactAddr = os.Getenv(CutArtifactAddrEnv)
	client := dial(t, cut)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	source := t.TempDir()
	contents := writeRandom(t, source, map[string]int{"big.bin": 40 << 20})
	pushed, err := client.Push(ctx, uniqueModel("cut"), source, modelreg.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file := pushed.Files[0]
	if file.ResumedStreams < 1 || file.Session == "" {
		t.Fatalf("no stream was resumed: %+v", file)
	}
	// Resuming re-sends at most what was in flight, not the whole file each time.
	if file.TransferredBytes >= int64(file.ResumedStreams+1)*file.SizeBytes {
		t.Fatalf("sent %d bytes for %d in %d resumed streams", file.TransferredBytes, file.SizeBytes, file.ResumedStreams)
	}
	dest := t.TempDir()
	if _, err := direct.Pull(ctx, pushed.Version.GetName(), dest, modelreg.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	assertPulled(t, dest, contents)
}

// A push that dies mid-upload (here: its only attempt meets a reset connection, as a killed
// process would stop) is continued by the next push of the same files with the same cache
// directory: the same version, and the large file from the bytes the service had committed.
func TestLivePushContinuesAfterAnInterruptedPush(t *testing.T) {
	cfg := liveConfig(t)
	if os.Getenv(KillArtifactAddrEnv) == "" {
		t.Skipf("%s is not set: no cutting proxy (tests/clients/test_go_client.py starts one)", KillArtifactAddrEnv)
	}
	cfg.CacheDir = t.TempDir()
	dying := cfg
	dying.ArtifactAddr = os.Getenv(KillArtifactAddrEnv)
	dying.Retry = modelreg.RetryPolicy{Attempts: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	source := t.TempDir()
	contents := writeRandom(t, source, map[string]int{"big.bin": 48 << 20, "small.json": 80 << 10})
	model := uniqueModel("killed")
	if _, err := dial(t, dying).Push(ctx, model, source, modelreg.PushOptions{Metrics: map[string]float64{"auc": 0.5}}); !errors.Is(err, modelreg.ErrUnavailable) {
		t.Fatalf("the interrupted push: %v", err)
	}
	client := dial(t, cfg)
	session, committed := notedSession(ctx, t, client, cfg.CacheDir)
	pushed, err := client.Push(ctx, model, source, modelreg.PushOptions{Metrics: map[string]float64{"auc": 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if !pushed.ContinuedEarlierPush || !strings.HasSuffix(pushed.Version.GetName(), "/versions/1") {
		t.Fatalf("a second version instead of the interrupted one: %s (continued %v)", pushed.Version.GetName(), pushed.ContinuedEarlierPush)
	}
	for _, f := range pushed.Files {
		if f.Path != "big.bin" {
			continue
		}
		// The same session, from at least what it had committed (maybe more: parts recorded
		// after the read), whose committed bytes are not sent again.
		if f.Session != session || f.SkippedBytes < committed || f.TransferredBytes > f.SizeBytes-committed ||
			(committed > 0 && f.Outcome != modelreg.OutcomeResumed) {
			t.Fatalf("the large file did not continue %s (committed %d): %+v", session, committed, f)
		}
		t.Logf("continued %s: %d bytes skipped, %d sent", session, f.SkippedBytes, f.TransferredBytes)
	}
	dest := t.TempDir()
	if _, err := client.Pull(ctx, pushed.Version.GetName(), dest, modelreg.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	assertPulled(t, dest, contents)
	if left, _ := os.ReadDir(filepath.Join(cfg.CacheDir, "uploads")); len(left) != 0 {
		t.Fatalf("upload notes left after the push: %d", len(left))
	}
	if left, _ := os.ReadDir(filepath.Join(cfg.CacheDir, "pushes")); len(left) != 0 {
		t.Fatalf("push notes left after the push: %d", len(left))
	}
}

// notedSession is the upload session the journal notes for the push's one large file (the
// documented layout, <cache>/uploads/<key>.json, shared with the Python SDK), and its committed
// bytes once the parts in flight at the cut had a moment to be recorded: a cut may also come
// before the service stored any part, and then there is nothing to skip.
func notedSession(ctx context.Context, t *testing.T, client *modelreg.Client, cacheDir string) (string, int64) {
	t.Helper()
	notes, _ := os.ReadDir(filepath.Join(cacheDir, "uploads"))
	if len(notes) != 1 {
		t.Fatalf("the interrupted push left %d upload notes, want 1", len(notes))
	}
	data, err := os.ReadFile(filepath.Join(cacheDir, "uploads", notes[0].Name()))
	var note struct{ Session string }
	if err != nil || json.Unmarshal(data, &note) != nil {
		t.Fatalf("upload note: %v %s", err, data)
	}
	var committed int64
	for deadline := time.Now().Add(5 * time.Second); committed == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		session, err := client.Artifacts.GetUploadSession(ctx, &v1.GetUploadSessionRequest{Name: note.Session})
		if err != nil {
			t.Fatal(err)
		}
		committed = session.GetCommittedSize()
	}
	return note.Session, committed
}

// downloadCutter forwards 127.0.0.1:<port> to target and resets every open connection once,
// after `after` bytes came back from the target: a download broken mid-stream.
// (tests/integration/cutting_proxy.py counts only the bytes towards the service.)
func downloadCutter(t *testing.T, target string, after int64) (string, *atomic.Bool, *atomic.Int64) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		open     []net.Conn
		received atomic.Int64
		cut      atomic.Bool
	)
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			if tcp, ok := c.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0) // a reset, not an orderly close
			}
			_ = c.Close()
		}
		open = nil
	}
	go func() {
		for {
			client, err := listener.Accept()
			if err != nil {
				return
			}
			upstream, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			mu.Lock()
			open = append(open, client, upstream)
			mu.Unlock()
			go func() { _, _ = io.Copy(upstream, client); _ = upstream.Close() }()
			go func() {
				buffer := make([]byte, 256<<10)
				for {
					n, err := upstream.Read(buffer)
					if n > 0 {
						if _, werr := client.Write(buffer[:n]); werr != nil {
							return
						}
						if received.Add(int64(n)) >= after && cut.CompareAndSwap(false, true) {
							closeAll()
							return
						}
					}
					if err != nil {
						_ = client.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = listener.Close(); closeAll() })
	return listener.Addr().String(), &cut, &received
}

// A download broken mid-stream continues from the bytes already written, and the file is
// placed only once its SHA-256 matches.
func TestLivePullResumesAfterACutDownload(t *testing.T) {
	cfg := liveConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	source := t.TempDir()
	contents := writeRandom(t, source, map[string]int{"weights.bin": 24 << 20})
	pushed, err := dial(t, cfg).Push(ctx, uniqueModel("cutpull"), source, modelreg.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	through := cfg
	address, cut, received := downloadCutter(t, cfg.ArtifactAddr, 16<<20)
	through.ArtifactAddr = address
	dest := t.TempDir()
	pulled, err := dial(t, through).Pull(ctx, pushed.Version.GetName(), dest, modelreg.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !cut.Load() {
		t.Fatal("the proxy never cut the download")
	}
	// Continued, not restarted: only what the transport held at the cut crosses twice (a
	// restart from byte 0 would carry 16 + 24 MiB).
	if size := pulled.Files[0].SizeBytes; received.Load() > size+8<<20 {
		t.Fatalf("%d bytes came through the proxy for a %d-byte file", received.Load(), size)
	}
	t.Logf("%d bytes came through the proxy for a %d-byte file", received.Load(), pulled.Files[0].SizeBytes)
	assertPulled(t, dest, contents)
}

func TestLiveErrorReasons(t *testing.T) {
	client := dial(t, liveConfig(t))
	ctx := context.Background()
	_, err := client.Metadata.GetModel(ctx, &v1.GetModelRequest{Name: "namespaces/goclient/models/" + "absent-model-x"})
	if !errors.Is(err, modelreg.ErrNotFound) {
		t.Fatalf("GetModel of an absent model: %v", err)
	}
	source := t.TempDir()
	writeRandom(t, source, map[string]int{"m.bin": 1 << 10})
	model := uniqueModel("guard")
	pushed, err := client.Push(ctx, model, source, modelreg.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	namespace, modelID, _ := modelreg.ParseModelRef(model)
	alias := "namespaces/" + namespace + "/models/" + modelID + "/aliases/production"
	if _, err := client.Metadata.ProtectAlias(ctx, &v1.ProtectAliasRequest{Protection: &v1.AliasProtection{Name: alias}}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Metadata.SetAlias(ctx, &v1.SetAliasRequest{Name: alias, ModelVersion: pushed.Version.GetName()})
	var refused *modelreg.Error
	if !errors.As(err, &refused) || refused.Code != codes.FailedPrecondition ||
		refused.Reason != "PROTECTED_ALIAS_VERSION_NOT_APPROVED" || refused.Domain != modelreg.ErrorDomain {
		t.Fatalf("moving a protected alias to an unapproved version: %v", err)
	}
	// Bad input names the field.
	_, err = client.Metadata.CreateModelVersion(ctx, &v1.CreateModelVersionRequest{Parent: "namespaces/NOPE"})
	if !errors.As(err, &refused) || refused.Code != codes.InvalidArgument || len(refused.FieldViolations) == 0 {
		t.Fatalf("a malformed parent: %v", err)
	}
}

func TestLiveUnauthenticated(t *testing.T) {
	cfg := liveConfig(t)
	cfg.Token = ""
	client := dial(t, cfg)
	_, err := client.Metadata.GetModel(context.Background(), &v1.GetModelRequest{Name: "namespaces/goclient/models/x"})
	if !errors.Is(err, modelreg.ErrUnauthenticated) {
		t.Fatalf("a call without a credential: %v", err)
	}
}

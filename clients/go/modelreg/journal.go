package modelreg

// Notes in the cache directory that let a transfer interrupted by a killed process continue,
// in the Python SDK's layout (clients/python/modelreg/journal.py), one JSON file per key:
//
//   - <cache>/uploads/<key>.json: which upload session holds the committed bytes of a file
//     (key: SHA-256 of "version \0 path \0 sha256", the SDK's, so either client continues a
//     session the other left in the same version);
//   - <cache>/pushes/<key>.json: which version a push of exactly this content and metadata
//     created, and the request id of its create (keys of its own: the SDK hashes Python's
//     serialization of the draft).
//
// A note only saves work: the service is asked before any note is trusted, so a journal that
// cannot be read or written (a read-only cache, a torn file) costs the resumption, never the
// transfer.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	v1 "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1"
)

// CacheDirEnv names the cache directory (else $XDG_CACHE_HOME/modelreg, ~/.cache/modelreg).
const CacheDirEnv = "MODELREG_CACHE_DIR"

// DefaultCacheDir is where the Python SDK keeps its cache and journals too.
func DefaultCacheDir() string {
	if dir := os.Getenv(CacheDirEnv); dir != "" {
		return dir
	}
	if base := os.Getenv("XDG_CACHE_HOME"); base != "" {
		return filepath.Join(base, "modelreg")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "modelreg")
}

// journal is <root>/<key>.json per unfinished transfer, each replaced whole (write, then rename).
// A journal with an empty root keeps nothing.
type journal struct{ root string }

func (j journal) load(key string, record any) bool {
	if j.root == "" {
		return false
	}
	data, err := os.ReadFile(filepath.Join(j.root, key+".json"))
	return err == nil && json.Unmarshal(data, record) == nil
}

func (j journal) save(key string, record any) {
	if j.root == "" {
		return
	}
	data, err := json.Marshal(record)
	if err != nil || os.MkdirAll(j.root, 0o755) != nil {
		return
	}
	temporary := filepath.Join(j.root, "."+key+"."+newRequestID())
	if os.WriteFile(temporary, data, 0o644) != nil || os.Rename(temporary, filepath.Join(j.root, key+".json")) != nil {
		_ = os.Remove(temporary)
	}
}

func (j journal) remove(key string) {
	if j.root != "" {
		_ = os.Remove(filepath.Join(j.root, key+".json"))
	}
}

// uploadNote is the upload journal's record, as the Python SDK writes it.
type uploadNote struct {
	Session      string `json:"session"`
	ModelVersion string `json:"model_version"`
	Path         string `json:"path"`
	SHA256       string `json:"sha256"`
	SizeBytes    int64  `json:"size_bytes"`
	Source       string `json:"source"`
}

// uploadKey is the upload journal's key for a file: its version, path and content.
func uploadKey(version string, file LocalFile) string {
	sum := sha256.Sum256([]byte(version + "\x00" + file.Path + "\x00" + file.SHA256))
	return hex.EncodeToString(sum[:])
}

// pushNote is the push journal's record: the create's request id (so a create retried after a
// lost answer, or by the next run, is the same create) and the version it made.
type pushNote struct {
	RequestID string `json:"request_id"`
	Version   string `json:"version"`
}

// pushKey identifies a push: the model, the version's metadata and every file's content.
func pushKey(model string, draft *v1.ModelVersion, files []LocalFile) string {
	identity := sha256.New()
	identity.Write([]byte(model))
	serialized, _ := proto.MarshalOptions{Deterministic: true}.Marshal(draft)
	identity.Write(serialized)
	for _, f := range files {
		fmt.Fprintf(identity, "\n%s\x00%d\x00%s", f.Path, f.SizeBytes, f.SHA256)
	}
	return hex.EncodeToString(identity.Sum(nil))
}

// continuable reports whether a push can finish this version: a PENDING one that holds only our
// files, or a READY one that holds exactly our files (the earlier push was killed after sealing).
func continuable(version *v1.ModelVersion, files []LocalFile) bool {
	if version.GetDeleted() {
		return false
	}
	ours := map[string]string{}
	for _, f := range files {
		ours[f.Path] = fmt.Sprintf("%d:%s", f.SizeBytes, f.SHA256)
	}
	theirs := map[string]string{}
	for _, f := range version.GetFiles() {
		theirs[f.GetPath()] = fmt.Sprintf("%d:%s", f.GetSizeBytes(), f.GetSha256())
	}
	for path, entry := range theirs {
		if ours[path] != entry {
			return false
		}
	}
	switch version.GetState() {
	case v1.ModelVersionState_MODEL_VERSION_STATE_PENDING:
		return true
	case v1.ModelVersionState_MODEL_VERSION_STATE_READY:
		return len(ours) == len(theirs)
	}
	return false
}

// continues reports whether a journaled session can take this file's bytes (or has them).
func continues(session *v1.UploadSession, version string, file LocalFile) bool {
	spec := session.GetSpec()
	same := spec.GetModelVersion() == version && spec.GetPath() == file.Path &&
		strings.EqualFold(spec.GetSha256(), file.SHA256) && spec.GetSizeBytes() == file.SizeBytes
	state := session.GetState()
	return same && (state == v1.UploadState_UPLOAD_STATE_ACTIVE || state == v1.UploadState_UPLOAD_STATE_FINISHED)
}

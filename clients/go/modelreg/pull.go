package modelreg

// The download protocol (docs/artifact-protocol.md, "Download one file"), as the Python SDK's
// clients/python/modelreg/downloads.py and pulls.py implement it: an alias is resolved once, so
// every file comes from one version; each distinct blob is streamed into a staging file inside
// the destination (`.modelreg-partial/<sha256>`), continuing from the bytes already there after
// a break (also after a killed process), hashed over the whole file and compared with the
// manifest; only when every file is verified are they renamed to their paths. A failed pull
// therefore places nothing, and a file under its final name is always complete and verified.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"

	v1 "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1"
)

// StagingDir holds a pull's partial downloads inside its destination.
const StagingDir = ".modelreg-partial"

// PullOptions change what a pull accepts.
type PullOptions struct {
	// Pull a PENDING version (files may still be added to it); else FAILED_PRECONDITION
	// VERSION_NOT_SEALED.
	AllowPending bool
	// Replace what is in the way (other content under a path the version needs) once every
	// file is verified; else nothing is downloaded and the error (reason DESTINATION_NOT_EMPTY)
	// lists every such path in Paths. Files the version does not name are never touched.
	Force bool
}

// PullResult is the version pulled and what happened to each of its files.
type PullResult struct {
	Version *v1.ModelVersion
	Files   []TransferredFile
}

// ResolveVersion reads a version by `namespace/model@alias`, `namespace/model/3` or a resource name.
func (c *Client) ResolveVersion(ctx context.Context, ref string) (*v1.ModelVersion, error) {
	parsed, err := ParseVersionRef(ref)
	if err != nil {
		return nil, err
	}
	if parsed.Alias != "" {
		return c.Metadata.GetModelVersionByAlias(ctx, &v1.GetModelVersionByAliasRequest{Name: parsed.Name()})
	}
	return c.Metadata.GetModelVersion(ctx, &v1.GetModelVersionRequest{Name: parsed.Name()})
}

// Pull downloads every file of a version into dir, each verified by SHA-256. Files already in
// dir with the same bytes are kept as they are.
func (c *Client) Pull(ctx context.Context, ref, dir string, opts PullOptions) (*PullResult, error) {
	version, err := c.ResolveVersion(ctx, ref)
	if err != nil {
		return nil, err
	}
	if version.GetState() == v1.ModelVersionState_MODEL_VERSION_STATE_PENDING && !opts.AllowPending {
		return nil, localError(codes.FailedPrecondition, "VERSION_NOT_SEALED",
			"%s is still PENDING (files may still be added); pull it once it is sealed", version.GetName())
	}
	files := version.GetFiles()
	root, targets, err := planTargets(dir, files)
	if err != nil {
		return nil, err
	}
	kept, inTheWay, err := survey(files, targets)
	if err != nil {
		return nil, err
	}
	if len(inTheWay) > 0 && !opts.Force {
		e := localError(codes.FailedPrecondition, "DESTINATION_NOT_EMPTY",
			"%s holds other content under %d path(s) this version needs (%s); pull into an empty directory or force it",
			root, len(inTheWay), strings.Join(inTheWay, ", "))
		e.Paths = inTheWay
		return nil, e
	}
	staging := filepath.Join(root, StagingDir)
	received := map[string]int64{}
	var needed []*v1.ModelFile
	for i, f := range files {
		if _, seen := received[f.GetSha256()]; !seen && !kept[targets[i]] {
			received[f.GetSha256()] = 0
			needed = append(needed, f)
		}
	}
	if len(needed) > 0 {
		if err := os.MkdirAll(staging, 0o755); err != nil {
			return nil, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot create %s: %v", staging, err)
		}
	}
	counts := make([]int64, len(needed))
	group, gctx := errgroup.WithContext(ctx)
	group.SetLimit(c.cfg.ParallelFiles)
	for i, f := range needed {
		group.Go(func() error {
			n, err := c.downloadFile(gctx, version.GetName(), f, filepath.Join(staging, f.GetSha256()))
			counts[i] = n
			return err
		})
	}
	if err := group.Wait(); err != nil {
		return nil, err
	}
	for i, f := range needed {
		received[f.GetSha256()] = counts[i]
	}
	result, err := place(root, staging, files, targets, kept, inTheWay, received)
	if err != nil {
		return nil, err
	}
	_ = os.RemoveAll(staging)
	return &PullResult{Version: version, Files: result}, nil
}

// planTargets maps each manifest path under dir, refusing anything that could escape it: the
// services validate paths too, but a client must not trust a manifest with its file system.
func planTargets(dir string, files []*v1.ModelFile) (string, []string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot create %s: %v", dir, err)
	}
	root, err := filepath.Abs(dir)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return "", nil, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot resolve %s: %v", dir, err)
	}
	paths := map[string]bool{}
	for _, f := range files {
		paths[f.GetPath()] = true
	}
	targets := make([]string, len(files))
	for i, f := range files {
		if err := CheckFilePath(f.GetPath()); err != nil {
			return "", nil, localError(codes.FailedPrecondition, "UNSAFE_MANIFEST", "refusing to write manifest path %q: %v", quoted(f.GetPath()), err)
		}
		segments := strings.Split(f.GetPath(), "/")
		for depth := 1; depth < len(segments); depth++ {
			if parent := strings.Join(segments[:depth], "/"); paths[parent] {
				return "", nil, localError(codes.FailedPrecondition, "UNSAFE_MANIFEST",
					"manifest path %q needs %q to be a directory, but the manifest also lists it as a file", quoted(f.GetPath()), parent)
			}
		}
		targets[i] = filepath.Join(root, filepath.FromSlash(f.GetPath()))
	}
	return root, targets, nil
}

// survey finds the targets that hold the right bytes already (kept) and those where something
// else is (in the way: another file, a directory, a link).
func survey(files []*v1.ModelFile, targets []string) (map[string]bool, []string, error) {
	kept := map[string]bool{}
	var inTheWay []string
	for i, f := range files {
		info, err := os.Lstat(targets[i])
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot read %s: %v", targets[i], err)
		}
		if info.Mode().IsRegular() && info.Size() == f.GetSizeBytes() {
			if digest, _, err := hashFile(targets[i]); err == nil && digest == f.GetSha256() {
				kept[targets[i]] = true
				continue
			}
		}
		inTheWay = append(inTheWay, targets[i])
	}
	return kept, inTheWay, nil
}

// place clears what is in the way (only a forced pull gets here with any, and only now that
// every blob is verified), then renames each staged blob to its first path and copies it to
// further paths with the same content.
func place(root, staging string, files []*v1.ModelFile, targets []string, kept map[string]bool, inTheWay []string, received map[string]int64) ([]TransferredFile, error) {
	for _, p := range inTheWay {
		if err := os.RemoveAll(p); err != nil {
			return nil, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot replace %s: %v", p, err)
		}
	}
	placed := map[string]string{} // digest -> the first target that holds it
	out := make([]TransferredFile, len(files))
	for i, f := range files {
		target, digest := targets[i], f.GetSha256()
		out[i] = TransferredFile{Path: f.GetPath(), SizeBytes: f.GetSizeBytes(), SHA256: digest, Outcome: OutcomeKept}
		if kept[target] {
			continue
		}
		parent := filepath.Dir(target)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot create %s: %v", parent, err)
		}
		// A directory that already exists under the destination may be a link to elsewhere.
		if resolved, err := filepath.EvalSymlinks(parent); err != nil || !within(root, resolved) {
			return nil, localError(codes.FailedPrecondition, "UNSAFE_MANIFEST", "%s leads outside %s (a symbolic link); refusing to write", parent, root)
		}
		if first, ok := placed[digest]; ok {
			if err := copyFile(first, target); err != nil {
				return nil, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot write %s: %v", target, err)
			}
			continue
		}
		if err := os.Rename(filepath.Join(staging, digest), target); err != nil {
			return nil, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot write %s: %v", target, err)
		}
		placed[digest] = target
		out[i].Outcome, out[i].TransferredBytes = OutcomeDownloaded, received[digest]
	}
	return out, nil
}

func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		return err
	}
	return dst.Close()
}

// downloadFile streams one file of version into partial, continuing after the bytes already
// there, and returns the bytes received. The partial file holds exactly the verified content
// when it returns nil.
func (c *Client) downloadFile(ctx context.Context, version string, file *v1.ModelFile, partial string) (int64, error) {
	out, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot write %s: %v", partial, err)
	}
	defer out.Close()
	hasher, offset, err := hashPrefix(out, file.GetSizeBytes())
	if err != nil {
		return 0, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot read %s: %v", partial, err)
	}
	received, err := c.fetch(ctx, version, file, out, hasher, offset)
	if err != nil {
		return received, err
	}
	if hex.EncodeToString(hasher.Sum(nil)) == file.GetSha256() {
		return received, nil
	}
	// A resumed prefix could itself be damaged (a disk error, a file edited by hand): fetch the
	// whole file once more before calling the server's bytes bad.
	if offset > 0 {
		if err := out.Truncate(0); err != nil {
			return received, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot write %s: %v", partial, err)
		}
		hasher = sha256.New()
		more, err := c.fetch(ctx, version, file, out, hasher, 0)
		received += more
		if err != nil {
			return received, err
		}
		if hex.EncodeToString(hasher.Sum(nil)) == file.GetSha256() {
			return received, nil
		}
	}
	_ = out.Truncate(0)
	return received, localError(codes.DataLoss, "DIGEST_MISMATCH", "%s: received bytes hash to %s, but the manifest of %s records %s",
		file.GetPath(), hex.EncodeToString(hasher.Sum(nil)), version, file.GetSha256())
}

// hashPrefix hashes what an earlier attempt wrote and says where to continue; a file longer
// than the blob is no prefix of it and starts over.
func hashPrefix(f *os.File, size int64) (hash.Hash, int64, error) {
	hasher := sha256.New()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, 0, err
	}
	if end > size {
		if err := f.Truncate(0); err != nil {
			return nil, 0, err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(hasher, f)
	return hasher, n, err
}

// fetch appends the file's bytes from offset to its end, retrying broken streams from where the
// bytes on disk end. Returns the bytes received.
func (c *Client) fetch(ctx context.Context, version string, file *v1.ModelFile, out *os.File, hasher hash.Hash, offset int64) (int64, error) {
	position := offset
	size := file.GetSizeBytes()
	if _, err := out.Seek(offset, io.SeekStart); err != nil {
		return 0, localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot write %s: %v", out.Name(), err)
	}
	err := retrying(ctx, c.cfg.Retry, func(ctx context.Context) error {
		if position == size {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, c.cfg.streamTimeout(size-position))
		defer cancel()
		stream, err := c.Artifacts.DownloadFile(ctx, &v1.DownloadFileRequest{ModelVersion: version, Path: file.GetPath(), Offset: position})
		if err != nil {
			return err
		}
		for {
			message, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return FromStatus(err)
			}
			if header := message.GetFile(); header != nil {
				// By version number, never by alias: the header must repeat the manifest.
				if header.GetSizeBytes() != size || header.GetSha256() != file.GetSha256() {
					return localError(codes.DataLoss, "MANIFEST_MISMATCH",
						"%s: the artifact service describes it as %d bytes, sha256 %s, but the manifest of %s says %d bytes, sha256 %s",
						file.GetPath(), header.GetSizeBytes(), header.GetSha256(), version, size, file.GetSha256())
				}
			}
			data := message.GetData()
			if len(data) == 0 {
				continue
			}
			if message.GetOffset() != position || position+int64(len(data)) > size {
				return localError(codes.DataLoss, "UNEXPECTED_OFFSET", "%s: the server sent bytes %d..%d while %d was expected of %d",
					file.GetPath(), message.GetOffset(), message.GetOffset()+int64(len(data)), position, size)
			}
			if _, err := out.Write(data); err != nil {
				return localError(codes.FailedPrecondition, "LOCAL_FILE", "cannot write %s: %v", out.Name(), err)
			}
			hasher.Write(data)
			position += int64(len(data))
		}
		if position != size {
			return localError(codes.DataLoss, "SIZE_MISMATCH", "%s: the download ended at byte %d of %d", file.GetPath(), position, size)
		}
		return nil
	})
	return position - offset, err
}

// String describes a pull result in one line (for commands).
func (r *PullResult) String() string {
	var bytes int64
	for _, f := range r.Files {
		bytes += f.TransferredBytes
	}
	return fmt.Sprintf("%s: %d files, %d bytes received", r.Version.GetName(), len(r.Files), bytes)
}

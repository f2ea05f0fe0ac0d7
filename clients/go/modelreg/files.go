package modelreg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"sort"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
)

// LocalFile is one file a push sends: its path inside the version ('/'-separated), where it
// is on disk, and its size and SHA-256 (hashed before the upload: the service checks both).
type LocalFile struct {
	Path        string
	Source      string
	SizeBytes   int64
	SHA256      string
	ContentType string
}

// DescribeFiles lists and hashes the files of root: a single file is pushed under its own
// name, a directory as every regular file below it (links to files are followed, links to
// directories refused, as the Python SDK does). Files are hashed `parallel` at a time.
func DescribeFiles(ctx context.Context, root string, parallel int) ([]LocalFile, error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, localError(codes.InvalidArgument, "LOCAL_FILE", "cannot read %s: %v", root, err)
	}
	var found []LocalFile
	switch {
	case info.Mode().IsRegular():
		found = []LocalFile{{Path: filepath.Base(root), Source: root}}
	case info.IsDir():
		err = filepath.WalkDir(root, func(p string, entry fs.DirEntry, walkErr error) error {
			if walkErr != nil {
				return localError(codes.InvalidArgument, "LOCAL_FILE", "cannot read %s: %v", p, walkErr)
			}
			if entry.IsDir() {
				return nil
			}
			target, err := os.Stat(p)
			if err != nil {
				return localError(codes.InvalidArgument, "LOCAL_FILE", "cannot read %s: %v", p, err)
			}
			if target.IsDir() {
				return localError(codes.InvalidArgument, "LOCAL_FILE", "%s is a link to a directory; push its target instead", p)
			}
			if !target.Mode().IsRegular() {
				return localError(codes.InvalidArgument, "LOCAL_FILE", "%s is not a regular file (or a link to one)", p)
			}
			rel, _ := filepath.Rel(root, p)
			found = append(found, LocalFile{Path: filepath.ToSlash(rel), Source: p})
			return nil
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, localError(codes.InvalidArgument, "LOCAL_FILE", "%s is neither a file nor a directory", root)
	}
	if len(found) == 0 {
		return nil, localError(codes.InvalidArgument, "LOCAL_FILE", "%s contains no files; nothing to push", root)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Path < found[j].Path })
	group, ctx := errgroup.WithContext(ctx)
	group.SetLimit(max(parallel, 1))
	for i := range found {
		if err := CheckFilePath(found[i].Path); err != nil {
			return nil, err
		}
		group.Go(func() error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			digest, size, err := hashFile(found[i].Source)
			if err != nil {
				return localError(codes.InvalidArgument, "LOCAL_FILE", "cannot read %s: %v", found[i].Source, err)
			}
			found[i].SHA256, found[i].SizeBytes = digest, size
			found[i].ContentType = contentType(found[i].Path)
			return nil
		})
	}
	return found, group.Wait()
}

func hashFile(source string) (string, int64, error) {
	f, err := os.Open(source)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	hasher := sha256.New()
	size, err := io.Copy(hasher, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(hasher.Sum(nil)), size, nil
}

func contentType(p string) string {
	if guessed := mime.TypeByExtension(path.Ext(p)); guessed != "" {
		return guessed
	}
	return "application/octet-stream"
}

package modelreg

// The upload protocol (docs/artifact-protocol.md, "Upload one file"), as the Python SDK's
// clients/python/modelreg/uploads.py implements it. Three ways, cheapest first:
//
//   - Known content (FindMissingBlobs says the registry stores these bytes, in any model or
//     version): StartUpload records the file at once and returns a FINISHED session; no byte is sent.
//   - Large files (at least ResumableMinBytes): a resumable session. WriteUpload streams the
//     bytes from the session's committed_size; after a broken stream GetUploadSession says where
//     the service stands and a new stream continues from there. While another session uploads
//     the same content (UploadSession.concurrent_upload), the client waits for its blob instead
//     of sending the bytes a second time.
//   - Small files: UploadFile, one stream, no session; a retry sends the (few) bytes again.
//
// The service hashes everything it receives and adds the file to the version only when size
// and SHA-256 match; the client never has to be trusted about the bytes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	v1 "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1"
)

// Outcomes of one file of a push or a pull.
const (
	OutcomeUploaded       = "uploaded"
	OutcomeResumed        = "resumed"
	OutcomeDeduplicated   = "deduplicated"
	OutcomeAlreadyPresent = "already_present"
	OutcomeDownloaded     = "downloaded"
	OutcomeKept           = "kept"
)

// FindMissingBlobs takes at most this many digests per call.
const digestsPerCall = 1000

// Waiting for another upload of the same content: the first and the longest pause between looks.
const (
	waitFirst = 200 * time.Millisecond
	waitMax   = 2 * time.Second
)

// TransferredFile is what happened to one file of a push or a pull.
type TransferredFile struct {
	Path      string
	SizeBytes int64
	SHA256    string
	Outcome   string
	// Bytes of the file sent or received by this call (re-sent bytes after a break included).
	TransferredBytes int64
	// `uploads/{id}` when the bytes went through a resumable session.
	Session string
	// Bytes the registry held before this call sent any (all of them for known content).
	SkippedBytes int64
	// Broken streams continued from the service's committed_size.
	ResumedStreams int
}

// StoredBlobs reports which of the digests the registry stores already (in any model or
// version). Asked for the version about to receive the files: it needs the right to upload there.
func (c *Client) StoredBlobs(ctx context.Context, version string, digests []string) (map[string]bool, error) {
	stored := map[string]bool{}
	seen := map[string]bool{}
	var wanted []string
	for _, d := range digests {
		if !seen[d] {
			seen[d] = true
			wanted = append(wanted, d)
		}
	}
	for start := 0; start < len(wanted); start += digestsPerCall {
		batch := wanted[start:min(start+digestsPerCall, len(wanted))]
		response, err := c.Artifacts.FindMissingBlobs(ctx, &v1.FindMissingBlobsRequest{Sha256S: batch, ModelVersion: version})
		if err != nil {
			return nil, err
		}
		missing := map[string]bool{}
		for _, d := range response.GetMissingSha256S() {
			missing[d] = true
		}
		for _, d := range batch {
			if !missing[d] {
				stored[d] = true
			}
		}
	}
	return stored, nil
}

// UploadFile stores file in the PENDING version (`namespaces/.../versions/{n}`) and returns
// once the service verified and recorded it. stored: the registry holds these bytes already
// (from StoredBlobs). replace: other content at the file's path is replaced (else
// ALREADY_EXISTS, reason FILE_EXISTS).
func (c *Client) UploadFile(ctx context.Context, version string, file LocalFile, stored, replace bool) (TransferredFile, error) {
	if stored {
		session, err := c.startUpload(ctx, version, file, replace)
		if err != nil {
			return TransferredFile{}, err
		}
		if session.GetState() == v1.UploadState_UPLOAD_STATE_FINISHED {
			return c.report(file, OutcomeDeduplicated, 0, session.GetName(), file.SizeBytes, 0), nil
		}
		// The blob was collected in between: send the bytes after all.
		c.remember(version, file, session)
		if session, err = c.afterConcurrentUploads(ctx, version, file, session, replace); err != nil {
			return TransferredFile{}, err
		}
		return c.writeSession(ctx, version, file, session)
	}
	if file.SizeBytes < ResumableMinBytes {
		return c.uploadWhole(ctx, version, file, replace)
	}
	session, err := c.resumableSession(ctx, version, file, replace)
	if err != nil {
		return TransferredFile{}, err
	}
	if session, err = c.afterConcurrentUploads(ctx, version, file, session, replace); err != nil {
		return TransferredFile{}, err
	}
	return c.writeSession(ctx, version, file, session)
}

// resumableSession is the session an interrupted push (this process or a killed one) left for
// the file, if it can go on; else a new one, noted in the upload journal.
func (c *Client) resumableSession(ctx context.Context, version string, file LocalFile, replace bool) (*v1.UploadSession, error) {
	var note uploadNote
	if c.uploads.load(uploadKey(version, file), &note) && note.Session != "" {
		earlier, err := c.session(ctx, note.Session)
		switch {
		case err == nil && continues(earlier, version, file):
			return earlier, nil
		case err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidArgument):
			return nil, err
		}
	}
	session, err := c.startUpload(ctx, version, file, replace)
	if err == nil && session.GetState() != v1.UploadState_UPLOAD_STATE_FINISHED {
		c.remember(version, file, session)
	}
	return session, err
}

func (c *Client) remember(version string, file LocalFile, session *v1.UploadSession) {
	source, err := filepath.Abs(file.Source)
	if err != nil {
		source = file.Source
	}
	c.uploads.save(uploadKey(version, file), uploadNote{
		Session: session.GetName(), ModelVersion: version, Path: file.Path, SHA256: file.SHA256,
		SizeBytes: file.SizeBytes, Source: source,
	})
}

// forget drops the journal's note of the file's upload session: nothing is left to resume.
func (c *Client) forget(version string, file LocalFile) {
	c.uploads.remove(uploadKey(version, file))
}

func (c *Client) report(file LocalFile, outcome string, sent int64, session string, skipped int64, resumed int) TransferredFile {
	return TransferredFile{
		Path: file.Path, SizeBytes: file.SizeBytes, SHA256: file.SHA256, Outcome: outcome,
		TransferredBytes: sent, Session: session, SkippedBytes: skipped, ResumedStreams: resumed,
	}
}

func spec(version string, file LocalFile, replace bool) *v1.UploadSpec {
	return &v1.UploadSpec{
		ModelVersion: version, Path: file.Path, SizeBytes: file.SizeBytes, Sha256: file.SHA256,
		ContentType: file.ContentType, ReplaceExisting: replace,
	}
}

func (c *Client) startUpload(ctx context.Context, version string, file LocalFile, replace bool) (*v1.UploadSession, error) {
	return c.Artifacts.StartUpload(ctx, &v1.StartUploadRequest{Spec: spec(version, file, replace)})
}

func (c *Client) session(ctx context.Context, name string) (*v1.UploadSession, error) {
	return c.Artifacts.GetUploadSession(ctx, &v1.GetUploadSessionRequest{Name: name})
}

// afterConcurrentUploads waits while another session uploads the same content, then reuses its
// blob, so concurrent pushes of one file (into several models) send its bytes about once. The
// service names the other session only while it makes progress: when it stalls or fails, this
// session sends the bytes itself; nobody waits forever. Returns the session to write (ACTIVE),
// or a FINISHED one that reused the stored blob.
func (c *Client) afterConcurrentUploads(ctx context.Context, version string, file LocalFile, session *v1.UploadSession, replace bool) (*v1.UploadSession, error) {
	delay := waitFirst
	for session.GetState() == v1.UploadState_UPLOAD_STATE_ACTIVE && session.GetConcurrentUpload() != "" {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, waitMax)
		var err error
		if session, err = c.session(ctx, session.GetName()); err != nil {
			return nil, err
		}
		if session.GetConcurrentUpload() != "" || session.GetState() != v1.UploadState_UPLOAD_STATE_ACTIVE {
			continue
		}
		stored, err := c.StoredBlobs(ctx, version, []string{file.SHA256})
		if err != nil {
			return nil, err
		}
		if !stored[file.SHA256] {
			return session, nil // the other upload stalled or failed: send the bytes ourselves
		}
		// Stored by the other upload: record the file from its blob, drop the waiting session.
		c.cancelQuietly(ctx, session.GetName())
		c.forget(version, file)
		if session, err = c.startUpload(ctx, version, file, replace); err != nil {
			return nil, err
		}
		if session.GetState() != v1.UploadState_UPLOAD_STATE_FINISHED { // collected meanwhile (rare)
			c.remember(version, file, session)
		}
	}
	return session, nil
}

func (c *Client) cancelQuietly(ctx context.Context, name string) {
	// Ended already (FAILED_PRECONDITION) or gone (NOT_FOUND): nothing to free.
	_, _ = c.Artifacts.CancelUploadSession(ctx, &v1.CancelUploadSessionRequest{Name: name})
}

// writeSession sends the bytes the session lacks, continuing from committed_size after any break.
func (c *Client) writeSession(ctx context.Context, version string, file LocalFile, session *v1.UploadSession) (TransferredFile, error) {
	skipped := session.GetCommittedSize() // committed by an earlier push of this file
	var sent int64
	resumed := 0
	current := session
	fresh := true           // current was just read from the service
	refusedAtStart := false // the last stream was refused before it carried any bytes
	var finished *v1.UploadSession
	err := retrying(ctx, c.cfg.Retry, func(ctx context.Context) error {
		if !fresh { // after a broken stream: where does the service stand now?
			next, err := c.session(ctx, current.GetName())
			if err != nil {
				return err
			}
			current = next
			if !refusedAtStart {
				resumed++
			}
		}
		fresh, refusedAtStart = false, false
		switch current.GetState() {
		case v1.UploadState_UPLOAD_STATE_FINISHED:
			finished = current
			return nil
		case v1.UploadState_UPLOAD_STATE_ACTIVE:
		default:
			return ended(current)
		}
		var trailer metadata.MD
		result, n, err := c.writeStream(ctx, current, file, &trailer)
		sent += n
		if err != nil {
			failure := c.streamFailure(ctx, err, trailer, current.GetName(), file)
			// A stream refused for its offset carried nothing: it does not count as resumed.
			refusedAtStart = Reason(failure) == "WRITE_OFFSET_MISMATCH"
			return failure
		}
		finished = result
		return nil
	})
	if err != nil {
		return TransferredFile{}, err
	}
	if finished.GetState() != v1.UploadState_UPLOAD_STATE_FINISHED {
		return TransferredFile{}, ended(finished)
	}
	c.forget(version, file)
	outcome := OutcomeUploaded
	if skipped > 0 {
		outcome = OutcomeResumed
	}
	if finished.GetBlobReused() && sent == 0 {
		outcome, skipped = OutcomeDeduplicated, file.SizeBytes
	}
	return c.report(file, outcome, sent, finished.GetName(), skipped, resumed), nil
}

// writeStream is one WriteUpload stream: the session's name at its committed_size, the file's
// bytes from there in messages of ChunkBytes (one buffer, reused: gRPC encodes a message before
// Send returns), then finish_write. Returns the bytes it sent.
func (c *Client) writeStream(ctx context.Context, session *v1.UploadSession, file LocalFile, trailer *metadata.MD) (*v1.UploadSession, int64, error) {
	start := session.GetCommittedSize()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.streamTimeout(file.SizeBytes-start))
	defer cancel()
	stream, err := c.Artifacts.WriteUpload(ctx, grpc.Trailer(trailer))
	if err != nil {
		return nil, 0, err
	}
	var sent int64
	send := func(message *v1.WriteUploadRequest) error {
		if err := stream.Send(message); err != nil {
			if errors.Is(err, io.EOF) { // the service ended the stream: its status says why
				_, err = stream.CloseAndRecv()
			}
			return FromStatus(err)
		}
		sent += int64(len(message.GetData()))
		return nil
	}
	if err := send(&v1.WriteUploadRequest{UploadSession: session.GetName(), WriteOffset: start}); err != nil {
		return nil, sent, err
	}
	offset, err := c.sendFile(ctx, file, start, func(offset int64, data []byte) error {
		return send(&v1.WriteUploadRequest{WriteOffset: offset, Data: data})
	})
	if err != nil {
		return nil, sent, err
	}
	if err := send(&v1.WriteUploadRequest{WriteOffset: offset, FinishWrite: true}); err != nil {
		return nil, sent, err
	}
	result, err := stream.CloseAndRecv()
	return result, sent, FromStatus(err)
}

// sendFile reads file from offset in messages of ChunkBytes; every message but the last is
// full, so none is below the protocol's 64 KiB floor. Returns the offset after the last byte.
func (c *Client) sendFile(ctx context.Context, file LocalFile, offset int64, send func(int64, []byte) error) (int64, error) {
	f, err := os.Open(file.Source)
	if err != nil {
		return offset, localError(codes.InvalidArgument, "LOCAL_FILE", "cannot read %s: %v", file.Source, err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, localError(codes.InvalidArgument, "LOCAL_FILE", "cannot read %s: %v", file.Source, err)
	}
	buffer := make([]byte, c.cfg.ChunkBytes)
	for {
		if ctx.Err() != nil {
			return offset, FromStatus(ctx.Err())
		}
		n, readErr := io.ReadFull(f, buffer)
		if n > 0 {
			if err := send(offset, buffer[:n]); err != nil {
				return offset, err
			}
			offset += int64(n)
		}
		if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
			return offset, nil
		}
		if readErr != nil {
			return offset, localError(codes.InvalidArgument, "LOCAL_FILE", "cannot read %s: %v", file.Source, readErr)
		}
	}
}

// streamFailure says what a failed upload stream means: UNAVAILABLE to continue from where the
// service stands (retried), or the error that ends the upload.
func (c *Client) streamFailure(ctx context.Context, err error, trailer metadata.MD, session string, file LocalFile) error {
	if Code(err) == codes.Internal {
		// gRPC may report INTERNAL instead of the service's status when the stream breaks
		// while we write (grpc/grpc#36066 in grpc.aio; an RST_STREAM from a proxy here): the
		// session says whether the service refused the bytes.
		refused, sessionErr := c.session(ctx, session)
		if sessionErr != nil {
			return sessionErr
		}
		state := refused.GetState()
		if state != v1.UploadState_UPLOAD_STATE_ACTIVE && state != v1.UploadState_UPLOAD_STATE_FINISHED {
			return ended(refused)
		}
		// The services name the request in every answer; a status without it came from this
		// process's transport: the stream broke and the session is intact, so resume it.
		if len(trailer.Get(RequestIDHeader)) == 0 {
			return localError(codes.Unavailable, "STREAM_BROKEN", "the upload stream of %s broke (%v); resuming", file.Path, err)
		}
	}
	if Reason(err) == "WRITE_OFFSET_MISMATCH" {
		// The service records the parts of a cut stream once S3 has them, which may be after
		// we read the session: it is further on now; continue from there.
		return localError(codes.Unavailable, "WRITE_OFFSET_MISMATCH", "the upload of %s is committed further than we read; continuing", file.Path)
	}
	return err
}

// uploadWhole is one UploadFile stream; a retry sends the whole (small) file again.
func (c *Client) uploadWhole(ctx context.Context, version string, file LocalFile, replace bool) (TransferredFile, error) {
	var sent int64
	var stored *v1.ModelFile
	err := retrying(ctx, c.cfg.Retry, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, c.cfg.streamTimeout(file.SizeBytes))
		defer cancel()
		stream, err := c.Artifacts.UploadFile(ctx)
		if err != nil {
			return err
		}
		send := func(message *v1.UploadFileRequest) error {
			if err := stream.Send(message); err != nil {
				if errors.Is(err, io.EOF) {
					_, err = stream.CloseAndRecv()
				}
				return FromStatus(err)
			}
			sent += int64(len(message.GetData()))
			return nil
		}
		if err := send(&v1.UploadFileRequest{Spec: spec(version, file, replace)}); err != nil {
			return err
		}
		offset, err := c.sendFile(ctx, file, 0, func(offset int64, data []byte) error {
			return send(&v1.UploadFileRequest{WriteOffset: offset, Data: data})
		})
		if err != nil {
			return err
		}
		if err := send(&v1.UploadFileRequest{WriteOffset: offset, FinishWrite: true}); err != nil {
			return err
		}
		stored, err = stream.CloseAndRecv()
		return FromStatus(err)
	})
	if err != nil {
		return TransferredFile{}, err
	}
	_ = stored
	return c.report(file, OutcomeUploaded, sent, "", 0, 0), nil
}

// ended is the error of a session that is no longer ACTIVE (FAILED, CANCELLED, EXPIRED).
func ended(session *v1.UploadSession) error {
	state := strings.TrimPrefix(session.GetState().String(), "UPLOAD_STATE_")
	reason := session.GetFailureReason()
	if reason == "" {
		reason = "UPLOAD_" + state
	}
	detail := ""
	if session.GetFailureMessage() != "" {
		detail = ": " + session.GetFailureMessage()
	}
	return &Error{
		Code: codes.FailedPrecondition, Reason: reason, Local: true,
		Message: fmt.Sprintf("upload session %s of %q is %s%s; push again to start over", session.GetName(), session.GetSpec().GetPath(), state, detail),
	}
}

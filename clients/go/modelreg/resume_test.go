package modelreg

// How an upload continues after a failed WriteUpload stream, against an in-process artifact
// service that fails streams the ways the real one (and gRPC) do. The live tests show the same
// against the real service through a proxy that resets connections; these pin each case.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	v1 "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1"
)

// streamFault is what the fake service does with one WriteUpload stream, after its first message.
type streamFault int

const (
	// Store everything and finish.
	faultNone streamFault = iota
	// Refuse the first message: the service had recorded 1 MiB more after the client read the
	// session (WRITE_OFFSET_MISMATCH, answered by the service: x-request-id in the trailers).
	faultOffsetMoved
	// Store 2 MiB, then fail as gRPC's core does when a stream breaks: INTERNAL, no request id.
	faultBrokenInternal
	// The service refused the bytes (session FAILED, DIGEST_MISMATCH) and gRPC reported
	// INTERNAL without the service's trailers.
	faultRefusedInternal
	// The service itself answered INTERNAL (a bug on its side): with its request id.
	faultServiceInternal
)

type fakeArtifacts struct {
	v1.UnimplementedArtifactServiceServer
	mu      sync.Mutex
	faults  []streamFault
	session *v1.UploadSession
	content []byte
	starts  []int64
}

func (f *fakeArtifacts) GetUploadSession(context.Context, *v1.GetUploadSessionRequest) (*v1.UploadSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.copySession(), nil
}

func (f *fakeArtifacts) copySession() *v1.UploadSession {
	return &v1.UploadSession{Name: f.session.Name, State: f.session.State, CommittedSize: f.session.CommittedSize,
		Spec: f.session.Spec, FailureReason: f.session.FailureReason}
}

func answered(ctx context.Context) {
	_ = grpc.SetTrailer(ctx, metadata.Pairs(RequestIDHeader, "fake-request"))
}

func (f *fakeArtifacts) WriteUpload(stream v1.ArtifactService_WriteUploadServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	f.mu.Lock()
	fault := faultNone
	if len(f.faults) > 0 {
		fault, f.faults = f.faults[0], f.faults[1:]
	}
	f.starts = append(f.starts, first.GetWriteOffset())
	committed := f.session.CommittedSize
	f.mu.Unlock()
	switch fault {
	case faultOffsetMoved:
		f.mu.Lock()
		f.session.CommittedSize += MiB
		f.mu.Unlock()
		answered(stream.Context())
		st, _ := status.New(codes.InvalidArgument, "write_offset is not where the session continues").WithDetails(
			&errdetails.ErrorInfo{Reason: "WRITE_OFFSET_MISMATCH", Domain: ErrorDomain})
		return st.Err()
	case faultRefusedInternal:
		f.mu.Lock()
		f.session.State, f.session.FailureReason = v1.UploadState_UPLOAD_STATE_FAILED, "DIGEST_MISMATCH"
		f.mu.Unlock()
		return status.Error(codes.Internal, "Internal error from Core")
	case faultServiceInternal:
		answered(stream.Context())
		return status.Error(codes.Internal, "internal error")
	}
	if first.GetWriteOffset() != committed {
		answered(stream.Context())
		return status.Error(codes.InvalidArgument, "unexpected offset")
	}
	offset := committed
	for {
		message, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "stream ended without finish_write")
		}
		if err != nil {
			return err
		}
		data := message.GetData()
		if message.GetWriteOffset() != offset || len(data) > MaxChunkBytes {
			return status.Error(codes.InvalidArgument, "bad data message")
		}
		copy(f.content[offset:], data)
		offset += int64(len(data))
		if fault == faultBrokenInternal && offset-committed >= 2*MiB {
			f.mu.Lock()
			f.session.CommittedSize = offset // what reached object storage before the break
			f.mu.Unlock()
			return status.Error(codes.Internal, "Internal error from Core")
		}
		if message.GetFinishWrite() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.session.CommittedSize, f.session.State = offset, v1.UploadState_UPLOAD_STATE_FINISHED
			return stream.SendAndClose(f.copySession())
		}
	}
}

func fakeUpload(t *testing.T, faults ...streamFault) (*Client, *fakeArtifacts, LocalFile, []byte) {
	t.Helper()
	data := make([]byte, 6*MiB+4321)
	_, _ = rand.Read(data)
	source := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(source, data, 0o600); err != nil {
		t.Fatal(err)
	}
	file := LocalFile{Path: "blob", Source: source, SizeBytes: int64(len(data)), SHA256: "unchecked-here"}
	fake := &fakeArtifacts{faults: faults, content: make([]byte, len(data)), session: &v1.UploadSession{
		Name: "uploads/fake", State: v1.UploadState_UPLOAD_STATE_ACTIVE, Spec: &v1.UploadSpec{Path: "blob"},
	}}
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	v1.RegisterArtifactServiceServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	cfg := Config{Retry: RetryPolicy{Attempts: 5, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Multiplier: 1}}.withDefaults()
	conn, err := grpc.NewClient("passthrough:///fake",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(unaryInterceptor(cfg)), grpc.WithChainStreamInterceptor(streamInterceptor(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &Client{Artifacts: v1.NewArtifactServiceClient(conn), cfg: cfg}, fake, file, data
}

func TestResumeAfterOffsetMismatchAndBrokenStream(t *testing.T) {
	client, fake, file, data := fakeUpload(t, faultOffsetMoved, faultBrokenInternal)
	report, err := client.writeSession(context.Background(), "", file, fake.copySession())
	if err != nil {
		t.Fatal(err)
	}
	// Refused at 0 (the service stood at 1 MiB), continued from 1 MiB, broken after 2 MiB more,
	// continued from 3 MiB: only the broken stream counts as resumed.
	if want := []int64{0, MiB, 3 * MiB}; len(fake.starts) != 3 || fake.starts[0] != want[0] || fake.starts[1] != want[1] || fake.starts[2] != want[2] {
		t.Fatalf("streams started at %v, want %v", fake.starts, want)
	}
	if report.ResumedStreams != 1 || report.Outcome != OutcomeUploaded {
		t.Fatalf("report %+v", report)
	}
	if !bytes.Equal(fake.content[MiB:], data[MiB:]) {
		t.Fatal("the service received other bytes than the file's")
	}
}

func TestRefusedBytesBehindInternalEndTheUpload(t *testing.T) {
	client, fake, file, _ := fakeUpload(t, faultRefusedInternal)
	_, err := client.writeSession(context.Background(), "", file, fake.copySession())
	var ended *Error
	if !errors.As(err, &ended) || ended.Reason != "DIGEST_MISMATCH" || ended.Code != codes.FailedPrecondition {
		t.Fatalf("a session the service FAILED: %v", err)
	}
	if len(fake.starts) != 1 {
		t.Fatalf("a refused upload was retried: %d streams", len(fake.starts))
	}
}

func TestTheServicesOwnInternalIsAnAnswer(t *testing.T) {
	client, fake, file, _ := fakeUpload(t, faultServiceInternal)
	_, err := client.writeSession(context.Background(), "", file, fake.copySession())
	if Code(err) != codes.Internal || len(fake.starts) != 1 {
		t.Fatalf("INTERNAL with the service's request id: %v after %d streams", err, len(fake.starts))
	}
}

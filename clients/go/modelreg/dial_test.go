package modelreg

// Dial against an in-process metadata service on 127.0.0.1: TLS from MODELREG_TLS and
// MODELREG_TLS_CA_FILE, the bearer credential and request id on every call, deadlines, and
// UNAVAILABLE retried under one request id.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	v1 "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1"
)

type seenCall struct {
	authorization, requestID string
	deadline                 bool
}

type fakeMetadata struct {
	v1.UnimplementedMetadataServiceServer
	mu          sync.Mutex
	unavailable int // answer UNAVAILABLE this many times first
	calls       []seenCall
}

func (f *fakeMetadata) GetModel(ctx context.Context, req *v1.GetModelRequest) (*v1.Model, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	_, deadline := ctx.Deadline()
	call := seenCall{deadline: deadline}
	if v := md.Get("authorization"); len(v) == 1 {
		call.authorization = v[0]
	}
	if v := md.Get(RequestIDHeader); len(v) == 1 {
		call.requestID = v[0]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.unavailable > 0 {
		f.unavailable--
		return nil, status.Error(codes.Unavailable, "draining")
	}
	return &v1.Model{Name: req.GetName()}, nil
}

func (f *fakeMetadata) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// selfSigned is a certificate for 127.0.0.1 and its PEM, acting as its own CA.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "modelreg test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, _ := x509.MarshalECPrivateKey(key)
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM
}

func serveMetadata(t *testing.T, fake *fakeMetadata, options ...grpc.ServerOption) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer(options...)
	v1.RegisterMetadataServiceServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	return listener.Addr().String()
}

func TestDialWithTLSFromTheEnvironmentSendsTheCredential(t *testing.T) {
	pair, caPEM := selfSigned(t)
	fake := &fakeMetadata{}
	address := serveMetadata(t, fake, grpc.Creds(credentials.NewServerTLSFromCert(&pair)))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(MetadataAddrEnv, address)
	t.Setenv(ArtifactAddrEnv, address)
	t.Setenv(TokenEnv, "mrt_test_secret")
	t.Setenv(TokenFileEnv, "")
	t.Setenv(TLSEnv, "true") // a loopback address is plaintext unless TLS is asked for
	t.Setenv(TLSEnv+"_CA_FILE", caFile)
	client, err := DialFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	model, err := client.Metadata.GetModel(context.Background(), &v1.GetModelRequest{Name: "namespaces/a/models/b"})
	if err != nil || model.GetName() != "namespaces/a/models/b" {
		t.Fatalf("GetModel over TLS: %v %v", model, err)
	}
	call := fake.calls[0]
	if call.authorization != "Bearer mrt_test_secret" || call.requestID == "" || !call.deadline {
		t.Fatalf("the service saw %+v", call)
	}

	// Without TLS the same server cannot be reached: a status, not a hang.
	t.Setenv(TLSEnv, "auto")
	plain, err := DialFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := plain.Metadata.GetModel(ctx, &v1.GetModelRequest{Name: "namespaces/a/models/b"}); err == nil {
		t.Fatal("a plaintext call reached a TLS server")
	}
}

func TestUnavailableIsRetriedUnderOneRequestID(t *testing.T) {
	fake := &fakeMetadata{unavailable: 2}
	address := serveMetadata(t, fake)
	client, err := Dial(Config{MetadataAddr: address, ArtifactAddr: address, Token: "t",
		Retry: RetryPolicy{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Multiplier: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Metadata.GetModel(context.Background(), &v1.GetModelRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if len(fake.calls) != 3 || fake.calls[0].requestID != fake.calls[2].requestID {
		t.Fatalf("calls %+v", fake.calls)
	}
	// Spent attempts end in the last UNAVAILABLE, decoded.
	fake.unavailable = 5
	_, err = client.Metadata.GetModel(context.Background(), &v1.GetModelRequest{Name: "x"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after every attempt: %v", err)
	}
}

func TestAddressListsBalanceOverReplicas(t *testing.T) {
	first, second := &fakeMetadata{}, &fakeMetadata{}
	list := serveMetadata(t, first) + "," + serveMetadata(t, second)
	client, err := Dial(Config{MetadataAddr: list, ArtifactAddr: list})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// round_robin picks among the replicas connected so far: the second may take a moment.
	deadline := time.Now().Add(10 * time.Second)
	for (first.count() == 0 || second.count() == 0) && time.Now().Before(deadline) {
		if _, err := client.Metadata.GetModel(context.Background(), &v1.GetModelRequest{Name: "x"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if first.count() == 0 || second.count() == 0 {
		t.Fatalf("calls went to one replica only: %d and %d", first.count(), second.count())
	}
	if _, err := Dial(Config{MetadataAddr: "a.example:1,b.example:2"}); err == nil {
		t.Fatal("a list of host names was accepted")
	}
}

package modelreg

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	v1 "github.com/modelreg/modelreg/clients/go/gen/modelregistry/v1"
)

// RequestIDHeader is sent on every call; a retry of the same logical call reuses it, so the
// services log one request id for it.
const RequestIDHeader = "x-request-id"

// Data messages are up to 2 MiB; downloads come in 1 MiB messages. Leave room above gRPC's
// 4 MiB default, as the Python SDK does.
const maxMessageBytes = 16 * MiB

// Client holds one connection per service. The generated stubs are usable directly: their unary
// calls get the client's deadline, request id, retries and decoded errors.
type Client struct {
	Metadata  v1.MetadataServiceClient
	Access    v1.AccessServiceClient
	Artifacts v1.ArtifactServiceClient

	cfg          Config
	metadataConn *grpc.ClientConn
	artifactConn *grpc.ClientConn
	// Which session holds a file's committed bytes, and which version a push created.
	uploads, pushes journal
}

// Dial opens (lazily: no network traffic until the first call) the connections to both services.
func Dial(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	metadataConn, err := dial(cfg, cfg.MetadataAddr)
	if err != nil {
		return nil, err
	}
	artifactConn, err := dial(cfg, cfg.ArtifactAddr)
	if err != nil {
		_ = metadataConn.Close()
		return nil, err
	}
	return &Client{
		Metadata:     v1.NewMetadataServiceClient(metadataConn),
		Access:       v1.NewAccessServiceClient(metadataConn),
		Artifacts:    v1.NewArtifactServiceClient(artifactConn),
		cfg:          cfg,
		metadataConn: metadataConn,
		artifactConn: artifactConn,
		uploads:      journal{cacheSubdir(cfg.CacheDir, "uploads")},
		pushes:       journal{cacheSubdir(cfg.CacheDir, "pushes")},
	}, nil
}

func cacheSubdir(cacheDir, name string) string {
	if cacheDir == "" {
		return ""
	}
	return filepath.Join(cacheDir, name)
}

// DialFromEnv is Dial(ConfigFromEnv()).
func DialFromEnv() (*Client, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return Dial(cfg)
}

// Config is the configuration the client runs with (defaults filled in).
func (c *Client) Config() Config { return c.cfg }

// Close closes both connections.
func (c *Client) Close() error {
	err := c.metadataConn.Close()
	if artifactErr := c.artifactConn.Close(); err == nil {
		err = artifactErr
	}
	return err
}

func dial(cfg Config, address string) (*grpc.ClientConn, error) {
	transport := insecure.NewCredentials()
	if cfg.tlsFor(address) {
		conf := cfg.TLSConfig
		if conf == nil {
			conf = &tls.Config{MinVersion: tls.VersionTLS12} // the system's roots
		}
		transport = credentials.NewTLS(conf.Clone())
	}
	options := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
		grpc.WithChainUnaryInterceptor(unaryInterceptor(cfg)),
		grpc.WithChainStreamInterceptor(streamInterceptor(cfg)),
		// gRPC's reconnect backoff grows to 120 s by default; a restarted service (or a cut
		// connection) should be found again within the client's own retry budget.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second,
		}, MinConnectTimeout: 20 * time.Second}),
		// Several replicas (an address list, or dns:/// of a headless Service): spread calls.
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
	}
	if cfg.Token != "" {
		options = append(options, grpc.WithPerRPCCredentials(bearer{cfg.Token}))
	}
	target, builder, err := grpcTarget(address)
	if err != nil {
		return nil, err
	}
	if builder != nil {
		options = append(options, grpc.WithResolvers(builder))
	}
	conn, err := grpc.NewClient(target, options...)
	if err != nil {
		return nil, fmt.Errorf("modelreg: address %q: %w", address, err)
	}
	return conn, nil
}

// grpcTarget turns `host:port` into a target gRPC-Go dials, and a list of IP addresses with
// ports (`127.0.0.1:50051,127.0.0.1:50061`, several replicas, as the Python SDK takes) into a
// static resolver over all of them. Scheme'd targets (`dns:///svc:port`) pass as they are.
func grpcTarget(address string) (string, resolver.Builder, error) {
	address = strings.TrimSpace(address)
	if scheme, _, ok := strings.Cut(address, ":"); ok && (scheme == "dns" || scheme == "unix" || scheme == "passthrough") {
		return address, nil, nil
	}
	if scheme, rest, ok := strings.Cut(address, ":"); ok && (scheme == "ipv4" || scheme == "ipv6") {
		address = rest
	}
	if !strings.Contains(address, ",") {
		return "passthrough:///" + address, nil, nil
	}
	var addrs []resolver.Address
	for _, part := range strings.Split(address, ",") {
		part = strings.TrimSpace(part)
		host, _, err := net.SplitHostPort(part)
		if err != nil || net.ParseIP(host) == nil {
			return "", nil, fmt.Errorf("modelreg: %q in an address list is not an IP address with a port; "+
				"list IP addresses (a,b) or use one name that resolves to every replica (dns:///name:port)", part)
		}
		addrs = append(addrs, resolver.Address{Addr: part})
	}
	builder := manual.NewBuilderWithScheme("modelreg-" + newRequestID()[:8])
	builder.InitialState(resolver.State{Addresses: addrs})
	return builder.Scheme() + ":///replicas", builder, nil
}

// bearer sends the credential on every call. Transport security is not required: the local
// stack listens on loopback without TLS, and Config decides TLS per address (auto: unless loopback).
type bearer struct{ token string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

func newRequestID() string {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	return hex.EncodeToString(raw[:])
}

// withRequestID adds an x-request-id unless the caller's context carries one already.
func withRequestID(ctx context.Context) context.Context {
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(RequestIDHeader)) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, RequestIDHeader, newRequestID())
}

// unaryInterceptor gives each attempt a deadline (unless the caller set one), retries
// UNAVAILABLE with backoff under one request id, and decodes the final error.
func unaryInterceptor(cfg Config) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx = withRequestID(ctx)
		return retrying(ctx, cfg.Retry, func(ctx context.Context) error {
			if _, has := ctx.Deadline(); !has {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
				defer cancel()
			}
			return FromStatus(invoker(ctx, method, req, reply, cc, opts...))
		})
	}
}

// streamInterceptor only names the call; a stream's deadline scales with its bytes and its
// retries resume from an offset, which the transfer helpers decide.
func streamInterceptor(Config) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		stream, err := streamer(withRequestID(ctx), desc, cc, method, opts...)
		return stream, FromStatus(err)
	}
}

// retrying runs attempt until it succeeds, fails with another code than UNAVAILABLE (an answer:
// asking again would get the same one), the policy's attempts are spent or ctx ends.
func retrying(ctx context.Context, policy RetryPolicy, attempt func(context.Context) error) error {
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil || Code(err) != codes.Unavailable || n >= policy.Attempts {
			return err
		}
		timer := time.NewTimer(policy.jittered(n))
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
	}
}

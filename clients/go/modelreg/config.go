package modelreg

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// The environment variables the Python SDK reads too (docs/security.md, docs/tls.md).
const (
	MetadataAddrEnv = "MODELREG_METADATA_ADDR"
	ArtifactAddrEnv = "MODELREG_ARTIFACT_ADDR"
	TokenEnv        = "MODELREG_TOKEN"
	TokenFileEnv    = "MODELREG_TOKEN_FILE"
	DataDirEnv      = "MODELREG_DATA_DIR"
	TLSEnv          = "MODELREG_TLS"

	DefaultMetadataAddr = "127.0.0.1:50051"
	DefaultArtifactAddr = "127.0.0.1:50052"

	MiB = 1 << 20
	// The bounds of a data message (docs/artifact-protocol.md, "Data messages: their size"):
	// at most 2 MiB, at least 64 KiB unless it is the last of its stream.
	MinChunkBytes = 64 << 10
	MaxChunkBytes = 2 * MiB
	// S3's smallest multipart part: a smaller file is one part, so it cannot resume mid-file and
	// goes up in one UploadFile stream instead of a session.
	ResumableMinBytes = 5 * MiB
)

// TLSMode says when channels use TLS: TLSAuto (unless the address is loopback), TLSOn, TLSOff.
type TLSMode string

const (
	TLSAuto TLSMode = "auto"
	TLSOn   TLSMode = "on"
	TLSOff  TLSMode = "off"
)

// RetryPolicy is exponential backoff with full jitter for calls that failed with UNAVAILABLE:
// the request reached no server that acted on it, so repeating it is safe (creates carry a
// request id that makes a repeat return the first result).
type RetryPolicy struct {
	Attempts       int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Multiplier     float64
}

// DefaultRetryPolicy is the Python SDK's: 6 attempts, 0.2 s doubling up to 5 s.
var DefaultRetryPolicy = RetryPolicy{Attempts: 6, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Second, Multiplier: 2}

// Backoff is the longest sleep before retry number attempt (1-based).
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	d := float64(p.InitialBackoff)
	for i := 1; i < attempt; i++ {
		d *= p.Multiplier
	}
	return time.Duration(min(d, float64(p.MaxBackoff)))
}

// jittered picks the sleep before retry number attempt: full jitter keeps many clients that
// restart after an outage from arriving in lockstep.
func (p RetryPolicy) jittered(attempt int) time.Duration {
	longest := p.Backoff(attempt)
	if longest <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(longest) + 1))
}

// Config is how a client reaches the registry. ConfigFromEnv fills it the way the Python SDK does.
type Config struct {
	MetadataAddr string
	ArtifactAddr string
	// Sent as `authorization: Bearer <Token>` on every call; empty sends none.
	Token string
	// Where Token came from (MODELREG_TOKEN, a file), for messages; never the token itself.
	TokenSource string
	TLS         TLSMode
	// Trusted roots and client certificate when TLS is used; nil: the system's roots.
	TLSConfig *tls.Config
	// Deadline of each unary call attempt (30 s).
	Timeout time.Duration
	// Streams get Timeout plus their size at this rate (1 MiB/s): long enough for a slow link,
	// short enough that a stalled transfer does not hang a job forever.
	MinTransferBytesPerSecond int64
	Retry                     RetryPolicy
	// Bytes per data message (1 MiB), kept within MinChunkBytes..MaxChunkBytes.
	ChunkBytes int
	// Files transferred at once (4); each holds a few data messages in memory.
	ParallelFiles int
	// Where the upload and push journals go (<CacheDir>/uploads, <CacheDir>/pushes), so a push
	// whose process was killed continues its version and each large file's session. Empty: no
	// journal. ConfigFromEnv sets DefaultCacheDir().
	CacheDir string
}

func (c Config) withDefaults() Config {
	if c.MetadataAddr == "" {
		c.MetadataAddr = DefaultMetadataAddr
	}
	if c.ArtifactAddr == "" {
		c.ArtifactAddr = DefaultArtifactAddr
	}
	if c.TLS == "" {
		c.TLS = TLSAuto
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MinTransferBytesPerSecond <= 0 {
		c.MinTransferBytesPerSecond = MiB
	}
	if c.Retry.Attempts <= 0 {
		c.Retry = DefaultRetryPolicy
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = MiB
	}
	c.ChunkBytes = min(max(c.ChunkBytes, MinChunkBytes), MaxChunkBytes)
	if c.ParallelFiles <= 0 {
		c.ParallelFiles = 4
	}
	return c
}

// streamTimeout is the deadline of a stream that moves size bytes.
func (c Config) streamTimeout(size int64) time.Duration {
	return c.Timeout + time.Duration(float64(size)/float64(c.MinTransferBytesPerSecond)*float64(time.Second))
}

func (c Config) tlsFor(address string) bool {
	return c.TLS == TLSOn || (c.TLS == TLSAuto && !IsLoopback(address))
}

// ConfigFromEnv reads MODELREG_METADATA_ADDR, MODELREG_ARTIFACT_ADDR, MODELREG_CACHE_DIR, the
// credential and the TLS variables. The credential is the first source that is set: MODELREG_TOKEN, then the file
// MODELREG_TOKEN_FILE names, then (only for a loopback metadata address) the local stack's
// ${MODELREG_DATA_DIR:-.data}/admin.token. A source that is set but unusable is an error, never
// a silent step to the next one: that would act as somebody else.
func ConfigFromEnv() (Config, error) {
	cfg := Config{
		MetadataAddr: os.Getenv(MetadataAddrEnv),
		ArtifactAddr: os.Getenv(ArtifactAddrEnv),
		CacheDir:     DefaultCacheDir(),
	}.withDefaults()
	token, source, err := findCredential(cfg.MetadataAddr)
	if err != nil {
		return cfg, err
	}
	cfg.Token, cfg.TokenSource = token, source
	if err := tlsFromEnv(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func findCredential(metadataAddr string) (token, source string, err error) {
	if value := os.Getenv(TokenEnv); value != "" {
		token, err = checkedToken(value, TokenEnv)
		return token, TokenEnv, err
	}
	if path := os.Getenv(TokenFileEnv); path != "" {
		token, err = readTokenFile(path, TokenFileEnv)
		return token, TokenFileEnv + " " + path, err
	}
	if IsLoopback(metadataAddr) {
		dir := os.Getenv(DataDirEnv)
		if dir == "" {
			dir = ".data"
		}
		admin := filepath.Join(dir, "admin.token")
		if info, statErr := os.Stat(admin); statErr == nil && info.Mode().IsRegular() {
			token, err = readTokenFile(admin, "the local stack's admin credential")
			return token, "the local stack's admin credential " + admin, err
		}
	}
	return "", "", nil
}

func readTokenFile(path, source string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", localError(codes.Unauthenticated, "UNREADABLE_CREDENTIAL", "%s: cannot read %s: %v", source, path, err)
	}
	return checkedToken(string(data), source+" "+path)
}

// checkedToken is the token without surrounding whitespace; refused when it cannot be a header
// value (a pasted secret with a line break would fail in the transport with an obscure message).
func checkedToken(token, source string) (string, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return "", localError(codes.Unauthenticated, "EMPTY_CREDENTIAL", "%s is empty", source)
	}
	for _, r := range token {
		if r <= ' ' || r > '~' {
			return "", localError(codes.Unauthenticated, "MALFORMED_CREDENTIAL",
				"%s is not a credential (it contains spaces, line breaks or non-ASCII characters)", source)
		}
	}
	return token, nil
}

func tlsFromEnv(cfg *Config) error {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(TLSEnv))) {
	case "", "auto":
		cfg.TLS = TLSAuto
	case "true", "1", "yes", "on":
		cfg.TLS = TLSOn
	case "false", "0", "no", "off":
		cfg.TLS = TLSOff
	default:
		return localError(codes.InvalidArgument, "TLS_CONFIG", "%s=%q is not one of auto, true, false", TLSEnv, os.Getenv(TLSEnv))
	}
	caFile := os.Getenv(TLSEnv + "_CA_FILE")
	certFile, keyFile := os.Getenv(TLSEnv+"_CLIENT_CERT_FILE"), os.Getenv(TLSEnv+"_CLIENT_KEY_FILE")
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return localError(codes.InvalidArgument, "TLS_CONFIG", "%s_CA_FILE: %v", TLSEnv, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return localError(codes.InvalidArgument, "TLS_CONFIG", "%s_CA_FILE: %s holds no PEM certificate", TLSEnv, caFile)
		}
		conf.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return localError(codes.InvalidArgument, "TLS_CONFIG", "%s_CLIENT_CERT_FILE and %s_CLIENT_KEY_FILE go together: set both", TLSEnv, TLSEnv)
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return localError(codes.InvalidArgument, "TLS_CONFIG", "client certificate: %v", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	cfg.TLSConfig = conf
	return nil
}

// IsLoopback reports whether every host an address names is on this machine only
// (127.0.0.0/8, ::1, localhost); a list `a:1,b:2` is loopback when all of its entries are.
func IsLoopback(address string) bool {
	hosts := hostsOf(address)
	if len(hosts) == 0 {
		return false
	}
	for _, host := range hosts {
		if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
			continue
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

func hostsOf(address string) []string {
	target := strings.TrimSpace(address)
	if scheme, rest, ok := strings.Cut(target, ":"); ok && (scheme == "dns" || scheme == "ipv4" || scheme == "ipv6") {
		target = strings.TrimPrefix(rest, "//")
		if scheme == "dns" && strings.HasPrefix(rest, "//") {
			_, target, _ = strings.Cut(target, "/")
		}
	}
	var hosts []string
	for _, part := range strings.Split(target, ",") {
		part = strings.TrimSpace(part)
		if host, _, err := net.SplitHostPort(part); err == nil {
			hosts = append(hosts, host)
		} else if part != "" {
			hosts = append(hosts, strings.Trim(part, "[]"))
		}
	}
	return hosts
}

func (c Config) String() string {
	return fmt.Sprintf("metadata %s, artifacts %s, credential from %q", c.MetadataAddr, c.ArtifactAddr, c.TokenSource)
}

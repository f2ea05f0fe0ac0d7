// Package modelreg is the Go client of the modelreg model registry.
//
// Dial connects to both services (MetadataService and AccessService on the metadata address,
// ArtifactService on the artifact address) with the credential and TLS settings of Config, and
// gives every unary call a deadline, an x-request-id, retries of UNAVAILABLE with backoff and
// errors decoded into *Error (status code, ErrorInfo reason and metadata, field violations).
// The generated stubs (package modelregistryv1) are exposed as they are, so any RPC can be called.
//
// Push and Pull move files as docs/artifact-protocol.md specifies, the same way as the Python
// SDK (clients/python/modelreg/uploads.py, downloads.py): resumable upload sessions, content
// the registry stores already recorded without sending it (FindMissingBlobs), several files
// at once, SHA-256 verified on the way in and out, broken streams resumed from the service's
// committed offset, and memory bounded by a few data messages per file.
//
// Like the Python SDK, a push keeps notes in the cache directory (Config.CacheDir, from
// MODELREG_CACHE_DIR; the SDK's layout): running the same push again after its process was
// killed continues the version it had created, and each large file from the bytes the service
// had committed. A pull continues from the partial files it left in DIR/.modelreg-partial.
package modelreg

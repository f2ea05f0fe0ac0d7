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
// One difference from the Python SDK: the Go client keeps no journal on disk, so a push whose
// process was killed does not find its upload sessions again. Give PushOptions.RequestID a
// value derived from what is pushed and a rerun continues the same version (files already in
// its manifest are not sent again; a large file being uploaded starts over). A pull continues
// from the partial files it left in DIR/.modelreg-partial.
package modelreg

"""The modelregistry.v1 API for Python, shared by the services and the SDK.

- `modelregistry.v1` (a sibling package in this distribution): the generated messages and gRPC
  stubs, with `.pyi` stubs;
- `names`: resource names, parsed and validated the same way everywhere;
- `headers`: the gRPC metadata keys;
- `errors`: the AIP-193 error types and their codec (domain error -> status for servers,
  status -> typed exception for clients);
- `addresses`, `channels`: where the services listen and how a client reaches them (TLS);
- `wire`: the artifact service's data messages, encoded without copies.

Nothing here talks to a store or implements a use case; it is the contract and its codecs.
"""

"""What a caller may do: roles per namespace, the permission of every RPC, and the decisions."""

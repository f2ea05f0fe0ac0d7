/**
 * The schemas of the two `google.rpc` details the services put in `grpc-status-details-bin`
 * (docs/artifact-protocol.md, "Conventions of every call"): `ErrorInfo` and `BadRequest`.
 *
 * The registry's protos do not import `google/rpc/error_details.proto`, so buf generates no
 * TypeScript for it; rather than vendoring a second copy of googleapis' file, the two messages
 * are described here, field numbers as in googleapis (stable since 2017), and
 * `ConnectError.findDetails` decodes them by their full names.
 */

import { createFileRegistry, type DescMessage } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";

const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;
const { STRING, MESSAGE } = FieldDescriptorProto_Type;

function field(name: string, number: number, label = OPTIONAL, typeName?: string) {
  const jsonName = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return typeName === undefined
    ? { name, number, label, type: STRING, jsonName }
    : { name, number, label, type: MESSAGE, typeName, jsonName };
}

const errorDetails = create(FileDescriptorProtoSchema, {
  name: "google/rpc/error_details.proto",
  package: "google.rpc",
  syntax: "proto3",
  messageType: [
    {
      name: "ErrorInfo",
      field: [
        field("reason", 1),
        field("domain", 2),
        field("metadata", 3, REPEATED, ".google.rpc.ErrorInfo.MetadataEntry"),
      ],
      nestedType: [
        {
          name: "MetadataEntry",
          field: [field("key", 1), field("value", 2)],
          options: { mapEntry: true },
        },
      ],
    },
    {
      name: "BadRequest",
      field: [field("field_violations", 1, REPEATED, ".google.rpc.BadRequest.FieldViolation")],
      nestedType: [
        {
          name: "FieldViolation",
          field: [field("field", 1), field("description", 2), field("reason", 3)],
        },
      ],
    },
  ],
});

const registry = createFileRegistry(errorDetails, () => undefined);

function message(typeName: string): DescMessage {
  const desc = registry.getMessage(typeName);
  if (desc === undefined) throw new Error(`status-details: ${typeName} is not described`);
  return desc;
}

/** `google.rpc.ErrorInfo`: the machine-readable reason of an error. */
export const ErrorInfoSchema = message("google.rpc.ErrorInfo");
/** `google.rpc.BadRequest`: which fields of a request were refused. */
export const BadRequestSchema = message("google.rpc.BadRequest");

export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

export interface FieldViolation {
  field: string;
  description: string;
  reason: string;
}

export interface BadRequest {
  fieldViolations: FieldViolation[];
}

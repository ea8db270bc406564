// Package jsobj renders protobuf messages the way the Node client sees them:
// @grpc/proto-loader's decoded objects (protobufjs toObject with keepCase,
// longs: String, enums: String, bytes: String, defaults: true, oneofs: true),
// serialized as JSON.stringify would. It keeps JavaScript's key order, number
// formatting and string escaping so that the Go client's output matches the
// Node client's byte for byte.
package jsobj

package client

import (
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// rawCapture is the proto codec that also keeps the bytes of the reply it
// decodes, for one call.
type rawCapture struct {
	raw []byte
}

var protoCodec = encoding.GetCodecV2(grpcproto.Name)

func (r *rawCapture) Marshal(v any) (mem.BufferSlice, error) { return protoCodec.Marshal(v) }

func (r *rawCapture) Unmarshal(data mem.BufferSlice, v any) error {
	r.raw = data.Materialize()
	return protoCodec.Unmarshal(data, v)
}

func (r *rawCapture) Name() string { return grpcproto.Name }

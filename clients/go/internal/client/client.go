// Package client is a small client of the xenmca coordinator
// (xenmca.hypervisor.v1.HypervisorService) over the generated stubs: bearer
// token or mutual TLS, the Python channels' limits and keepalive, a deadline
// on every unary call.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	hypervisorv1 "xenmca.dev/clients/go/gen/xenmca/hypervisor/v1"
	recordv1 "xenmca.dev/clients/go/gen/xenmca/record/v1"
)

// DefaultDeadline is the deadline of every unary call unless Options say otherwise.
const DefaultDeadline = 10 * time.Second

// maxMessage is the Python channels' limit both ways (4 MiB).
const maxMessage = 4 * 1024 * 1024

// TLSFiles are the PEM bytes for mutual TLS.
type TLSFiles struct {
	CA, Cert, Key []byte
}

// Options of Connect.
type Options struct {
	// Deadline of each unary call (DefaultDeadline if 0).
	Deadline time.Duration
	// TLS, if set, makes the connection mutual TLS with these files.
	TLS *TLSFiles
}

// Client talks to one coordinator.
type Client struct {
	address  string
	deadline time.Duration
	conn     *grpc.ClientConn
	stub     hypervisorv1.HypervisorServiceClient
}

// bearer presents the token as `authorization: Bearer <token>` on every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// Connect makes a client of the coordinator at address (HOST:PORT). A
// non-empty token is sent as a bearer token; with opts.TLS the connection is
// mutual TLS and the coordinator takes the identity from the certificate's CN
// (a token, if also given, must name the same identity). No connection is
// made until the first call or WaitForReady.
func Connect(address, token string, opts Options) (*Client, error) {
	deadline := opts.Deadline
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	transport := insecure.NewCredentials()
	if opts.TLS != nil {
		cert, err := tls.X509KeyPair(opts.TLS.Cert, opts.TLS.Key)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(opts.TLS.CA) {
			return nil, errors.New("no CA certificate could be read")
		}
		transport = credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      pool,
			MinVersion:   tls.VersionTLS12,
		})
	}
	dialOptions := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                10 * time.Second,
			Timeout:             5 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   2 * time.Second,
			},
			MinConnectTimeout: 20 * time.Second,
		}),
	}
	if token != "" {
		dialOptions = append(dialOptions, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(address, dialOptions...)
	if err != nil {
		return nil, err
	}
	return &Client{address: address, deadline: deadline, conn: conn, stub: hypervisorv1.NewHypervisorServiceClient(conn)}, nil
}

// Address is the coordinator's HOST:PORT.
func (c *Client) Address() string { return c.address }

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }

// ErrNotReady is WaitForReady's error when the deadline passes first.
var ErrNotReady = errors.New("Failed to connect before the deadline")

// WaitForReady connects and returns once the channel is ready, or
// ErrNotReady when ctx ends first.
func (c *Client) WaitForReady(ctx context.Context) error {
	c.conn.Connect()
	for {
		state := c.conn.GetState()
		if state == connectivity.Ready {
			return nil
		}
		if state == connectivity.Shutdown || !c.conn.WaitForStateChange(ctx, state) {
			return ErrNotReady
		}
	}
}

// Status is DescribeHypervisor, with the reply's wire bytes (which keep the
// order of its map entries).
func (c *Client) Status(ctx context.Context) (*hypervisorv1.DescribeHypervisorResponse, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.deadline)
	defer cancel()
	codec := &rawCapture{}
	reply, err := c.stub.DescribeHypervisor(ctx, &hypervisorv1.DescribeHypervisorRequest{}, grpc.ForceCodecV2(codec))
	return reply, codec.raw, err
}

// GetStateInfo reads the oldest record of type t (SAL_GET_STATE_INFO).
func (c *Client) GetStateInfo(ctx context.Context, t recordv1.RecordType) (*hypervisorv1.GetStateInfoResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.deadline)
	defer cancel()
	return c.stub.GetStateInfo(ctx, &hypervisorv1.GetStateInfoRequest{Type: t})
}

// ClearStateInfo clears record recordID of type t (SAL_CLEAR_STATE_INFO).
func (c *Client) ClearStateInfo(ctx context.Context, t recordv1.RecordType, recordID uint64) (*hypervisorv1.ClearStateInfoResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.deadline)
	defer cancel()
	return c.stub.ClearStateInfo(ctx, &hypervisorv1.ClearStateInfoRequest{Type: t, RecordId: &recordID})
}

// AttachDom0 opens the virtual interrupt line; cancel ctx to detach.
func (c *Client) AttachDom0(ctx context.Context, instance string) (grpc.ServerStreamingClient[hypervisorv1.AttachDom0Response], error) {
	return c.stub.AttachDom0(ctx, &hypervisorv1.AttachDom0Request{Instance: instance})
}

package xenmca.client;

import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptors;
import io.grpc.ConnectivityState;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.MetadataUtils;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import xenmca.hypervisor.v1.HypervisorServiceGrpc;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.AttachDom0Request;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.AttachDom0Response;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.ClearStateInfoRequest;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.ClearStateInfoResponse;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.DescribeHypervisorRequest;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.DescribeHypervisorResponse;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.GetStateInfoRequest;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.GetStateInfoResponse;

/**
 * A client of the coordinator's HypervisorService over one channel (grpc-netty-shaded), built on
 * the stubs generated from protos/ at build time. Every call carries {@code authorization: Bearer
 * <token>} when a token is given; with TLS files the channel is mutual TLS and the coordinator takes
 * the identity from the client certificate's CN. Unary calls have a deadline.
 */
public final class XenClient implements AutoCloseable {
  /** The address the client was made for (HOST:PORT). */
  public final String address;

  private final ManagedChannel channel;
  private final HypervisorServiceGrpc.HypervisorServiceBlockingStub blocking;
  private final HypervisorServiceGrpc.HypervisorServiceStub async;
  private final long deadlineMs;

  /**
   * A client of the coordinator at address (HOST:PORT); no connection is made until a call.
   *
   * @param token bearer token to present, or null
   * @param tls mutual TLS files, or null for plaintext
   * @throws CommandError if the TLS files cannot be used
   */
  public XenClient(String address, String token, long deadlineMs, TlsFiles tls) throws CommandError {
    this.address = address;
    this.deadlineMs = deadlineMs;
    ChannelCredentials credentials;
    if (tls == null) {
      credentials = InsecureChannelCredentials.create();
    } else {
      try {
        credentials = TlsChannelCredentials.newBuilder()
            .keyManager(new ByteArrayInputStream(tls.cert), new ByteArrayInputStream(tls.key))
            .trustManager(new ByteArrayInputStream(tls.ca))
            .build();
      } catch (IOException | RuntimeException e) {
        throw new CommandError("TLS: cannot use the certificate, key or CA: " + e.getMessage());
      }
    }
    // The same limits and keepalive as the Python and Node channels.
    try {
      this.channel = Grpc.newChannelBuilder("dns:///" + address, credentials)
          .maxInboundMessageSize(4 * 1024 * 1024)
          .keepAliveTime(10, TimeUnit.SECONDS)
          .keepAliveTimeout(5, TimeUnit.SECONDS)
          .keepAliveWithoutCalls(true)
          .build();
    } catch (IllegalArgumentException e) {
      // The PEM files are parsed here: a key or certificate that is not valid inside its markers.
      throw new CommandError("TLS: cannot use the certificate, key or CA: " + e.getMessage());
    }
    Metadata headers = new Metadata();
    if (token != null) headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
    io.grpc.Channel withToken = ClientInterceptors.intercept(channel, MetadataUtils.newAttachHeadersInterceptor(headers));
    this.blocking = HypervisorServiceGrpc.newBlockingStub(withToken);
    this.async = HypervisorServiceGrpc.newStub(withToken);
  }

  /** DescribeHypervisor. */
  public DescribeHypervisorResponse status() {
    return blocking.withDeadlineAfter(deadlineMs, TimeUnit.MILLISECONDS)
        .describeHypervisor(DescribeHypervisorRequest.getDefaultInstance());
  }

  /** GetStateInfo(type), type by its RecordType number. */
  public GetStateInfoResponse getStateInfo(int type) {
    return blocking.withDeadlineAfter(deadlineMs, TimeUnit.MILLISECONDS)
        .getStateInfo(GetStateInfoRequest.newBuilder().setTypeValue(type).build());
  }

  /**
   * ClearStateInfo(type, recordId): clears exactly the record that was read. Like the Node client
   * it names the record by its id alone (the coordinator knows the pCPU of the entry in flight).
   */
  public ClearStateInfoResponse clearStateInfo(int type, long recordId) {
    return blocking.withDeadlineAfter(deadlineMs, TimeUnit.MILLISECONDS)
        .clearStateInfo(ClearStateInfoRequest.newBuilder().setTypeValue(type).setRecordId(recordId).build());
  }

  /** A running AttachDom0 stream. */
  public static final class Attachment {
    private final CompletableFuture<Throwable> ended = new CompletableFuture<>();
    private volatile ClientCallStreamObserver<AttachDom0Request> call;
    private volatile boolean cancelled;

    /** Completes when the stream ends: null for a clean end (or cancel()), else the error. */
    public CompletableFuture<Throwable> ended() {
      return ended;
    }

    /** Ends the stream (the coordinator sees dom0 detach). */
    public void cancel() {
      cancelled = true;
      ClientCallStreamObserver<AttachDom0Request> c = call;
      if (c != null) c.cancel("dom0 stopping", null);
    }
  }

  /** AttachDom0: onInterrupt gets each virtual interrupt (on a gRPC thread). */
  public Attachment attachDom0(String instance, Consumer<AttachDom0Response> onInterrupt) {
    Attachment attachment = new Attachment();
    async.attachDom0(AttachDom0Request.newBuilder().setInstance(instance).build(),
        new ClientResponseObserver<AttachDom0Request, AttachDom0Response>() {
          @Override
          public void beforeStart(ClientCallStreamObserver<AttachDom0Request> requestStream) {
            attachment.call = requestStream;
          }

          @Override
          public void onNext(AttachDom0Response interrupt) {
            onInterrupt.accept(interrupt);
          }

          @Override
          public void onError(Throwable error) {
            attachment.ended.complete(attachment.cancelled && RpcErrors.code(error) == io.grpc.Status.Code.CANCELLED ? null : error);
          }

          @Override
          public void onCompleted() {
            attachment.ended.complete(null);
          }
        });
    if (attachment.cancelled) attachment.cancel();
    return attachment;
  }

  /**
   * Wait until the channel is connected.
   *
   * @return false if it was not within timeoutMs (or the wait was interrupted)
   */
  public boolean waitForReady(long timeoutMs, CountDownLatch stopped) {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    for (;;) {
      ConnectivityState state = channel.getState(true);
      if (state == ConnectivityState.READY) return true;
      if (stopped.getCount() == 0) return true;
      long left = deadline - System.nanoTime();
      if (left <= 0) return false;
      CountDownLatch changed = new CountDownLatch(1);
      channel.notifyWhenStateChanged(state, changed::countDown);
      try {
        long slice = Math.min(left, TimeUnit.MILLISECONDS.toNanos(50));
        changed.await(slice, TimeUnit.NANOSECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      }
    }
  }

  /**
   * Reconnect now if the channel is waiting out a reconnect backoff. grpc-java's builder has no
   * setting for that backoff (it grows to 2 minutes), so dom0 calls this before each re-attach and
   * its own backoff (100 ms to 5 s) is what paces reconnection, as in the Node client.
   */
  public void resetConnectBackoff() {
    channel.resetConnectBackoff();
  }

  /** Closes the channel at once. */
  @Override
  public void close() {
    channel.shutdownNow();
    try {
      channel.awaitTermination(2, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}

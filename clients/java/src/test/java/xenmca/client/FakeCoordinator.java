package xenmca.client;

import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import xenmca.hypervisor.v1.HypervisorServiceGrpc;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.AttachDom0Request;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.AttachDom0Response;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.ClearStateInfoRequest;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.ClearStateInfoResponse;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.GetStateInfoRequest;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.GetStateInfoResponse;
import xenmca.record.v1.Record.ErrorRecord;
import xenmca.record.v1.Record.RecordType;

/**
 * A coordinator in memory, served over gRPC on a free loopback port: a FIFO of records per type,
 * CMC injected one at a time (the next after a CLEAR), CPE only polled. {@link #events} records
 * every GET and CLEAR in order (and the test's log adds when each line became durable).
 */
final class FakeCoordinator extends HypervisorServiceGrpc.HypervisorServiceImplBase implements AutoCloseable {
  static final int CMC = RecordType.RECORD_TYPE_CMC_VALUE;
  static final int CPE = RecordType.RECORD_TYPE_CPE_VALUE;

  final List<String> events = new ArrayList<>();
  final Map<Integer, Deque<ErrorRecord>> queues = new HashMap<>();
  final Map<String, Integer> clearFailures = new HashMap<>();
  Status attachError;
  private StreamObserver<AttachDom0Response> line;
  private long injection;
  private Server server;

  FakeCoordinator() {
    queues.put(CMC, new ArrayDeque<>());
    queues.put(CPE, new ArrayDeque<>());
  }

  /** A corrected record of type on pcpu. */
  static ErrorRecord record(int pcpu, long id, int type) {
    return ErrorRecord.newBuilder()
        .setPcpu(pcpu)
        .setRecordId(id)
        .setTypeValue(type)
        .setSeverity(xenmca.record.v1.Record.Severity.SEVERITY_CORRECTED)
        .setCreatedAt(com.google.protobuf.Timestamp.newBuilder().setSeconds(1700000000).setNanos(5))
        .addSections(xenmca.record.v1.Record.Section.newBuilder().setErrorRecoveryInfo(129)
            .setProcessor(xenmca.record.v1.Record.ProcessorSection.getDefaultInstance()))
        .build();
  }

  FakeCoordinator start() throws IOException {
    return start(0);
  }

  /** Serve on 127.0.0.1:port (0: any free port). */
  FakeCoordinator start(int port) throws IOException {
    server = io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder
        .forAddress(new java.net.InetSocketAddress("127.0.0.1", port), InsecureServerCredentials.create())
        .addService(this).build().start();
    return this;
  }

  int port() {
    return server.getPort();
  }

  String address() {
    return "127.0.0.1:" + port();
  }

  synchronized void event(String event) {
    events.add(event);
  }

  synchronized List<String> eventsSnapshot() {
    return new ArrayList<>(events);
  }

  synchronized int pending(int type) {
    return queues.get(type).size();
  }

  private static String key(ErrorRecord r) {
    return r.getPcpu() + ":" + r.getRecordId();
  }

  private synchronized void inject() {
    if (line != null && !queues.get(CMC).isEmpty()) {
      line.onNext(AttachDom0Response.newBuilder().setTypeValue(CMC).setInjectionId(++injection).build());
    }
  }

  @Override
  public void attachDom0(AttachDom0Request request, StreamObserver<AttachDom0Response> observer) {
    if (attachError != null) {
      observer.onError(attachError.asRuntimeException());
      return;
    }
    synchronized (this) {
      line = observer;
    }
    inject();
  }

  @Override
  public void getStateInfo(GetStateInfoRequest request, StreamObserver<GetStateInfoResponse> observer) {
    GetStateInfoResponse reply;
    synchronized (this) {
      ErrorRecord head = queues.get(request.getTypeValue()).peekFirst();
      events.add("get " + request.getTypeValue() + " " + (head == null ? "-" : key(head)));
      reply = head == null
          ? GetStateInfoResponse.newBuilder().setSalStatus(-5).build()
          : GetStateInfoResponse.newBuilder().setSalStatus(0).setRecord(head).setByIpi(head.getPcpu() != 0).build();
    }
    observer.onNext(reply);
    observer.onCompleted();
  }

  @Override
  public void clearStateInfo(ClearStateInfoRequest request, StreamObserver<ClearStateInfoResponse> observer) {
    ClearStateInfoResponse reply;
    boolean injectNext = false;
    synchronized (this) {
      Deque<ErrorRecord> queue = queues.get(request.getTypeValue());
      ErrorRecord head = queue.peekFirst();
      String key = (head == null ? "?" : Integer.toString(head.getPcpu())) + ":" + request.getRecordId();
      events.add("clear " + request.getTypeValue() + " " + key);
      if (head == null || !request.hasRecordId() || head.getRecordId() != request.getRecordId()) {
        reply = ClearStateInfoResponse.newBuilder().setSalStatus(-5).build();
      } else if (clearFailures.getOrDefault(key, 0) > 0) {
        clearFailures.merge(key, -1, Integer::sum);
        injectNext = request.getTypeValue() == CMC; // the entry is kept and injected again
        reply = ClearStateInfoResponse.newBuilder().setSalStatus(-3).build();
      } else {
        queue.removeFirst();
        injectNext = request.getTypeValue() == CMC;
        reply = ClearStateInfoResponse.newBuilder().setSalStatus(0).setClearedRecordId(head.getRecordId()).setPcpu(head.getPcpu()).build();
      }
    }
    observer.onNext(reply);
    observer.onCompleted();
    if (injectNext) inject();
  }

  @Override
  public void close() throws InterruptedException {
    if (server != null) {
      server.shutdownNow();
      server.awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}

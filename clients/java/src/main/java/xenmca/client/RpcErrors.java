package xenmca.client;

import com.google.protobuf.Any;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;

/**
 * One-line descriptions of failed calls, {@code CODE [REASON]: details}, with the ErrorInfo reason
 * the xenmca servers put in the google.rpc.Status of the trailers (grpc-status-details-bin).
 */
public final class RpcErrors {
  private RpcErrors() {}

  /** "UNAUTHENTICATED [MISSING_CREDENTIALS]: present a valid bearer token ..." */
  public static String describe(Throwable error) {
    Status status;
    if (error instanceof StatusRuntimeException) {
      status = ((StatusRuntimeException) error).getStatus();
    } else if (error instanceof StatusException) {
      status = ((StatusException) error).getStatus();
    } else {
      return String.valueOf(error.getMessage() != null ? error.getMessage() : error);
    }
    String reason = errorInfoReason(error);
    String details = status.getDescription() == null ? "" : status.getDescription();
    // A transport failure says little by itself ("io exception"): add what its root cause says.
    String cause = rootCauseMessage(status.getCause());
    if (cause != null && !details.contains(cause)) details = details.isEmpty() ? cause : details + ": " + cause;
    details = details.replaceAll("\\s+", " ").replaceFirst("\\s*Resolution note:\\s*$", "").strip();
    return status.getCode().name() + (reason.isEmpty() ? "" : " [" + reason + "]") + ": " + details;
  }

  /** The message of the innermost cause that has one, or null. */
  private static String rootCauseMessage(Throwable cause) {
    String message = null;
    for (int depth = 0; cause != null && depth < 16; depth++, cause = cause.getCause()) {
      if (cause.getMessage() != null && !cause.getMessage().isBlank()) message = cause.getMessage();
    }
    return message;
  }

  /** The status code of a failed call, or null if it was not a gRPC status. */
  public static Status.Code code(Throwable error) {
    if (error instanceof StatusRuntimeException) return ((StatusRuntimeException) error).getStatus().getCode();
    if (error instanceof StatusException) return ((StatusException) error).getStatus().getCode();
    return null;
  }

  /** True for the codes that mean "this caller may not do that": retrying will not help. */
  public static boolean isIdentityRefusal(Throwable error) {
    Status.Code code = code(error);
    return code == Status.Code.UNAUTHENTICATED || code == Status.Code.PERMISSION_DENIED;
  }

  /** The ErrorInfo reason in the call's google.rpc.Status, or "" (also for a malformed detail). */
  static String errorInfoReason(Throwable error) {
    try {
      com.google.rpc.Status rich = StatusProto.fromThrowable(error);
      if (rich == null) return "";
      for (Any any : rich.getDetailsList()) {
        if (any.is(ErrorInfo.class)) return any.unpack(ErrorInfo.class).getReason();
      }
    } catch (Exception malformed) {
      // Not worth failing over: describe the call without it.
    }
    return "";
  }
}

package xenmca.client;

import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;

/**
 * The short error code (ENOENT, EACCES, EISDIR, ...) of a failed file operation, as the Node
 * client names it in its one-line errors.
 */
public final class IoErrors {
  private IoErrors() {}

  /** ENOENT for a missing file, EACCES for a refused one, EISDIR for a folder, else the message. */
  public static String code(Throwable e) {
    if (e instanceof NoSuchFileException) return "ENOENT";
    if (e instanceof AccessDeniedException) return "EACCES";
    if (e instanceof NotDirectoryException) return "ENOTDIR";
    String message = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    if (message.contains("Is a directory")) return "EISDIR";
    if (message.contains("Not a directory")) return "ENOTDIR";
    if (message.contains("No such file")) return "ENOENT";
    if (message.contains("Permission denied")) return "EACCES";
    if (message.contains("No space left")) return "ENOSPC";
    if (message.contains("Broken pipe")) return "EPIPE";
    if (e instanceof FileSystemException && ((FileSystemException) e).getReason() != null) {
      return ((FileSystemException) e).getReason();
    }
    return message.replaceAll("\\s+", " ");
  }
}

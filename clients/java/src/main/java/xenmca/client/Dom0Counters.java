package xenmca.client;

/** What a dom0 did: a snapshot of its counters, printed when it stops. */
public final class Dom0Counters {
  /** Virtual interrupts received. */
  public long interrupts;
  /** AttachDom0 streams opened. */
  public long attaches;
  /** New records written to the log. */
  public long logged;
  /** Records delivered again that were already in the log (cleared, not written). */
  public long duplicates;
  /** CLEARs the coordinator answered 0. */
  public long cleared;
  /** CPE polls made. */
  public long polls;
  /** RPCs that failed. */
  public long callErrors;

  Dom0Counters copy() {
    Dom0Counters c = new Dom0Counters();
    c.interrupts = interrupts;
    c.attaches = attaches;
    c.logged = logged;
    c.duplicates = duplicates;
    c.cleared = cleared;
    c.polls = polls;
    c.callErrors = callErrors;
    return c;
  }

  /** "7 records logged, 0 duplicates, 7 cleared, 9 interrupts, 3 CPE polls, 0 call errors". */
  public String summary() {
    return logged + " records logged, " + duplicates + " duplicates, " + cleared + " cleared, " + interrupts
        + " interrupts, " + polls + " CPE polls, " + callErrors + " call errors";
  }
}

import { createHash } from 'node:crypto';
import {
  duplicateWindowSeconds,
  ensureStream,
  type JetStreamClient,
  type JetStreamManager,
  type NatsNames,
} from '@calsync/service-kit';
import { DeliverPolicy, nanos, StorageType, type StreamInfo } from 'nats';
import type { PublishChange } from './outbox-relay';

/** Why a resume cursor cannot be honoured; every kind means: re-list, then watch afresh. */
export class CursorError extends Error {
  constructor(
    readonly kind: 'malformed' | 'unknown' | 'expired',
    message: string,
  ) {
    super(message);
    this.name = 'CursorError';
  }
}

export interface FeedEntry {
  /** Resume from here to continue right after this entry. */
  cursor: string;
  /** calsync.meetings.v1.MeetingChanged, encoded; absent on the first entry, which confirms where the watch starts. */
  message?: Uint8Array;
}

export interface WatchRequest {
  /** One user's changes; undefined for everyone's. */
  userId?: string;
  resumeFrom?: string;
  signal: AbortSignal;
}

export interface ChangeFeed {
  publish: PublishChange;
  /** The changes after the cursor (or from now), in order, until the signal aborts. Throws CursorError. */
  watch(request: WatchRequest): AsyncGenerator<FeedEntry>;
}

/** The change feed stream is ours (meetings publishes it): declared, and kept up to date, at start. */
export async function declareFeedStream(
  jsm: JetStreamManager,
  names: NatsNames,
  options: { retentionHours: number; replicas: number },
): Promise<void> {
  await ensureStream(jsm, {
    name: names.meetingsChangedStream,
    subjects: [names.meetingsChangedSubjects],
    storage: StorageType.File,
    max_age: nanos(options.retentionHours * 3_600_000),
    // Longer than any relay takeover: a change republished after a crash is dropped as a duplicate.
    duplicate_window: nanos(duplicateWindowSeconds * 1000),
    num_replicas: options.replicas,
  });
}

// A cursor is "<version>.<stream sequence>.<stream tag>": the tag names the stream's incarnation,
// so a cursor from before the stream was recreated is refused instead of silently misread.
const cursorPattern = /^c1\.(\d{1,15})\.([0-9a-f]{12})$/;

function streamTag(info: StreamInfo): string {
  return createHash('sha256').update(`${info.config.name}\n${info.created}`).digest('hex').slice(0, 12);
}

function formatCursor(seq: number, tag: string): string {
  return `c1.${seq}.${tag}`;
}

/** Where to start reading after `resumeFrom`, judged against the stream as it is now. */
function startAfter(resumeFrom: string, info: StreamInfo, tag: string): number {
  const match = cursorPattern.exec(resumeFrom);
  if (!match)
    throw new CursorError('malformed', 'resume_from is not a cursor this feed handed out; re-list and watch afresh');
  const seq = Number(match[1]);
  if (match[2] !== tag || seq > info.state.last_seq)
    throw new CursorError('unknown', 'resume_from belongs to an earlier change feed; re-list and watch afresh');
  if (seq + 1 < info.state.first_seq)
    throw new CursorError('expired', 'the changes after resume_from are no longer kept; re-list and watch afresh');
  return seq + 1;
}

export function createChangeFeed(deps: { js: JetStreamClient; jsm: JetStreamManager; names: NatsNames }): ChangeFeed {
  const { js, jsm, names } = deps;
  const stream = names.meetingsChangedStream;
  return {
    async publish(userId, message, changeId) {
      await js.publish(names.meetingsChangedSubject(userId), message, {
        msgID: changeId,
        expect: { streamName: stream },
      });
    },

    async *watch(request) {
      const info = await jsm.streams.info(stream);
      const tag = streamTag(info);
      const startSeq = request.resumeFrom ? startAfter(request.resumeFrom, info, tag) : info.state.last_seq + 1;
      yield { cursor: formatCursor(startSeq - 1, tag) };
      const consumer = await js.consumers.get(stream, {
        // One subject, not a list: lists need NATS 2.10, and Debian's nats-server is 2.9.
        filterSubjects: request.userId ? names.meetingsChangedSubject(request.userId) : names.meetingsChangedSubjects,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: startSeq,
      });
      const messages = await consumer.consume();
      const stop = () => void messages.stop();
      request.signal.addEventListener('abort', stop, { once: true });
      try {
        if (request.signal.aborted) return;
        for await (const message of messages) {
          yield { cursor: formatCursor(message.seq, tag), message: message.data };
        }
      } finally {
        request.signal.removeEventListener('abort', stop);
        stop();
      }
    },
  };
}

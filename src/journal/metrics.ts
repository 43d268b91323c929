import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface JournalStats {
  /** Bytes on disk (sealed segments plus what is queued for the open one). */
  bytes: number;
  /** Committed records held. */
  records: number;
  segments: number;
  /** Age of the oldest record held, ms; 0 when empty. */
  oldestRecordAgeMs: number;
  corruptFramesSkipped: number;
  fsyncs: number;
  /** Seconds spent in fdatasync, summed (mean latency = fsyncSeconds / fsyncs). */
  fsyncSeconds: number;
}

export interface JournalMetrics {
  fsyncs: Counter;
  fsyncSeconds: Histogram;
  corrupt: Counter<'kind'>;
  commits: Counter<'outcome'>;
  commitSeconds: Histogram;
  deletedSegments: Counter<'reason'>;
}

/** Registers the journal's metrics; the gauges read `stats()` at scrape time. */
export function journalMetrics(registry: Registry, stats: () => JournalStats): JournalMetrics {
  new Gauge({
    name: 'storeroute_journal_size_bytes', help: 'Bytes held by the replay journal on disk', registers: [registry],
    collect() { this.set(stats().bytes); },
  });
  new Gauge({
    name: 'storeroute_journal_records', help: 'Committed records held by the replay journal', registers: [registry],
    collect() { this.set(stats().records); },
  });
  new Gauge({
    name: 'storeroute_journal_segments', help: 'Segment files held by the replay journal', registers: [registry],
    collect() { this.set(stats().segments); },
  });
  new Gauge({
    name: 'storeroute_journal_oldest_record_age_seconds', help: 'Age of the oldest record in the replay journal',
    registers: [registry], collect() { this.set(stats().oldestRecordAgeMs / 1000); },
  });
  return {
    fsyncs: new Counter({ name: 'storeroute_journal_fsyncs_total', help: 'fdatasync calls on journal segments', registers: [registry] }),
    fsyncSeconds: new Histogram({
      name: 'storeroute_journal_fsync_duration_seconds', help: 'Time one fdatasync of a journal segment took',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5], registers: [registry],
    }),
    corrupt: new Counter({
      name: 'storeroute_journal_corrupt_frames_total', help: 'Torn or corrupt journal frames skipped while reading',
      labelNames: ['kind'] as const, registers: [registry],
    }),
    commits: new Counter({
      name: 'storeroute_journal_commits_total', help: 'Journal commits by outcome', labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    commitSeconds: new Histogram({
      name: 'storeroute_journal_commit_duration_seconds', help: 'Time from commit() to the record being as durable as configured',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [registry],
    }),
    deletedSegments: new Counter({
      name: 'storeroute_journal_segments_deleted_total', help: 'Segments removed by retention', labelNames: ['reason'] as const,
      registers: [registry],
    }),
  };
}

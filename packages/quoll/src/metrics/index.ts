export { ServerMetrics, LATENCY_BUCKETS, NO_PIPELINE } from './server-metrics.js';
export type { MetricsSources, PipelineTotals } from './server-metrics.js';
export { StatusCounts } from './status-counts.js';
export { MetricsWindow, quantileMs } from './metrics-window.js';
export type { MetricsSample, MetricsWindowOptions, PipelineWindowPoint } from './metrics-window.js';

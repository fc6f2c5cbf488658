/** What a time chart draws; shared by `ui.tsx` (which loads the chart lazily) and `chart.tsx`. */

/** One series of a `TimeChart` (ui.tsx). */
export interface Series {
  label: string;
  /** null = no value (a gap); a Float64Array (no boxed numbers) when no value is missing. */
  values: ReadonlyArray<number | null> | Float64Array;
}

/** The props of `TimeChart` (ui.tsx). */
export interface TimeChartProps {
  title: string;
  times: readonly number[] | Float64Array;
  series: readonly Series[];
  height?: number;
  /** The x range shown (seconds since the epoch); default: the data's. */
  range?: readonly [number, number];
}

/** A chart's box beyond the plot's height: the title line (20 px) and uPlot's legend (25 px). */
export const CHART_EXTRA_PX = 45;

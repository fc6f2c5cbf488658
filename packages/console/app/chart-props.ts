/** What a time chart draws; shared by `ui.tsx` (which loads the chart lazily) and `chart.tsx`. */

/** One series of a `TimeChart` (ui.tsx). */
export interface Series {
  label: string;
  values: ReadonlyArray<number | null>;
}

/** The props of `TimeChart` (ui.tsx). */
export interface TimeChartProps {
  title: string;
  times: readonly number[];
  series: readonly Series[];
  height?: number;
  /** The x range shown (seconds since the epoch); default: the data's. */
  range?: readonly [number, number];
}

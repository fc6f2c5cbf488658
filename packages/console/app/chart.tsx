import type { JSX } from 'preact';
import { useLayoutEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { CHART_EXTRA_PX } from './chart-props.js';
import type { Series, TimeChartProps } from './chart-props.js';

interface Palette {
  theme: string | undefined;
  lines: string[];
  text: string;
  grid: string;
}
let palette: Palette | null = null;

/** The theme's chart colours, read once per theme (getComputedStyle forces a style pass). */
function colours(): Palette {
  const theme = document.documentElement.dataset.theme;
  if (palette !== null && palette.theme === theme) return palette;
  const style = getComputedStyle(document.documentElement);
  const read = (name: string): string => style.getPropertyValue(name).trim() || '#888';
  palette = {
    theme,
    lines: ['--chart-1', '--chart-2', '--chart-3'].map(read),
    text: read('--muted'),
    grid: read('--border'),
  };
  return palette;
}

/**
 * A uPlot line chart of series over time (seconds since the epoch). The plot is made once per
 * series shape, height, range and theme; new data only calls setData. The title is ours (not
 * uPlot's), so a new title does not rebuild the plot. `data-points` says how many points the
 * canvas shows.
 */
export function UPlotChart(props: TimeChartProps): JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const height = props.height ?? 200;
  // The plot is remade only for a new number of series; new labels are written into its legend
  // (remaking it would force a layout of the whole page in the middle of a render).
  const shape = props.series.length;
  const labels = props.series.map((s) => s.label).join('\u0000');
  const theme = document.documentElement.dataset.theme;
  useLayoutEffect(() => {
    const el = box.current;
    if (el === null) return;
    const c = colours();
    const axis = { stroke: c.text, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1 } };
    const range = props.range;
    const opts: uPlot.Options = {
      width: Math.max(300, el.clientWidth),
      height,
      series: [
        {},
        ...props.series.map((s, i) => ({ label: s.label, stroke: c.lines[i % c.lines.length]!, width: 2 })),
      ],
      // The value axis is wide enough for seven-digit numbers.
      axes: [axis, { ...axis, size: 80 }],
      scales: {
        x: range ? { time: true, range: () => [range[0], range[1]] } : { time: true },
        // Without a value (no request in the window), 0 to 1: the axis still draws, so the
        // plot keeps its gutter and nothing moves when the first value comes.
        y: {
          range: (_u, min, max) =>
            min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)
              ? [0, 1]
              : uPlot.rangeNum(min, max, 0.1, true),
        },
      },
      // For the bench (performance timeline): when the canvas was last drawn.
      hooks: { draw: [() => performance.mark('quoll:chart:drawn')] },
    };
    const u = new uPlot(opts, toData(props.times, props.series), el);
    plot.current = u;
    el.dataset.points = String(props.times.length);
    let width = el.clientWidth;
    const resize = new ResizeObserver(() => {
      if (el.clientWidth === width) return;
      width = el.clientWidth;
      u.setSize({ width: Math.max(300, width), height });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [shape, height, theme, props.range?.[0], props.range?.[1]]);
  useLayoutEffect(() => {
    const u = plot.current;
    if (u === null) return;
    const cells = u.root.querySelectorAll('.u-legend .u-series .u-label');
    // The legend has a row for the x series too when it shows live values.
    const offset = cells.length === u.series.length ? 1 : 0;
    props.series.forEach((s, i) => {
      const series = u.series[i + 1];
      if (series === undefined || series.label === s.label) return;
      series.label = s.label;
      const cell = cells[i + offset];
      if (cell) cell.textContent = s.label;
    });
  }, [labels]);
  const first = useRef(true);
  // Before the paint (a layout effect): new data is drawn in the same frame as the rest of the
  // render, not one paint later.
  useLayoutEffect(() => {
    // The layout effect above drew the first data.
    if (first.current) {
      first.current = false;
      return;
    }
    if (plot.current === null || box.current === null) return;
    plot.current.setData(toData(props.times, props.series));
    box.current.dataset.points = String(props.times.length);
  }, [props.times, props.series]);
  return (
    <div
      class="chart"
      role="img"
      aria-label={props.title}
      style={{ minHeight: `${height + CHART_EXTRA_PX}px` }}
    >
      <div class="chart-title">{props.title}</div>
      <div ref={box} />
    </div>
  );
}

function toData(times: readonly number[] | Float64Array, series: readonly Series[]): uPlot.AlignedData {
  return [
    times instanceof Float64Array ? times : Float64Array.from(times),
    ...series.map((s) => s.values),
  ] as uPlot.AlignedData;
}

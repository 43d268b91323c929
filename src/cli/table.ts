/**
 * A tiny aligned-table formatter for human output. Columns are padded to their widest cell; the
 * last column is not padded so lines carry no trailing spaces (diff- and grep-friendly).
 */

export type Cell = string | number | boolean | null | undefined;

function text(cell: Cell): string {
  if (cell === null || cell === undefined || cell === '') return '-';
  return String(cell);
}

/** Header row in upper case, then one line per row; every line ends with "\n". */
export function formatTable(headers: string[], rows: Cell[][]): string {
  const all = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => headers.map((_, i) => text(r[i])))];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n') + '\n';
}

/** "key: value" lines with the keys aligned, for `show` commands. */
export function formatFields(fields: [string, Cell][]): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${(k + ':').padEnd(width + 1)} ${text(v)}`.trimEnd()).join('\n') + '\n';
}

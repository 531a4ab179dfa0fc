/**
 * The runs a command was invoked on. From a tree: the clicked node and the selection (VS Code
 * passes both when several are selected); from code or a test: an id, a list of ids, or `{ id }`.
 * Empty when invoked from the palette, where the command offers a pick instead.
 */
export function runIdsFrom(arg: unknown, selection?: unknown): number[] {
  const ids: number[] = [];
  const add = (value: unknown) => {
    if (typeof value === 'number' && Number.isInteger(value)) ids.push(value);
    else if (typeof value === 'string' && /^\d+$/.test(value)) ids.push(Number(value));
    else if (typeof value === 'object' && value !== null && 'id' in value && (!('kind' in value) || value.kind === 'run')) add(value.id);
  };
  // A selection that includes the clicked node is the whole of what was meant.
  if (Array.isArray(selection) && selection.length > 0) selection.forEach(add);
  else if (Array.isArray(arg)) arg.forEach(add);
  else add(arg);
  return [...new Set(ids)];
}

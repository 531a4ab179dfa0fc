/** VS Code's chart colors first (they follow the theme), then evenly spread hues for more runs. */
const CHART_VARIABLES = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'];
const FALLBACKS = ['#3794ff', '#d18616', '#89d185', '#b180d7', '#f14c4c', '#cca700'];

/**
 * The theme's colors as the canvas needs them (resolved strings), each read once: reading a CSS
 * variable after the page changed forces the browser to restyle it, so a render reads them
 * through one palette rather than per run or per chart.
 */
export class Palette {
  /** The body's theme classes: a chart is rebuilt when they change. */
  readonly theme = document.body.className;
  private readonly style = getComputedStyle(document.body);
  private readonly read = new Map<string, string>();

  /** A VS Code theme color (`--vscode-charts-blue`), or `fallback` where the theme sets none. */
  color(variable: string, fallback: string): string {
    let value = this.read.get(variable);
    if (value === undefined) this.read.set(variable, (value = this.style.getPropertyValue(variable).trim() || fallback));
    return value;
  }

  /** A run's color: stable for the run (its id), whichever runs are shown beside it. */
  run(jobId: number): string {
    const slot = jobId % 16;
    if (slot < CHART_VARIABLES.length) return this.color(CHART_VARIABLES[slot]!, FALLBACKS[slot]!);
    const hue = ((slot - CHART_VARIABLES.length) * 137.5) % 360;
    return `hsl(${hue} 65% ${/\bvscode-light\b/.test(this.theme) ? 40 : 62}%)`;
  }
}

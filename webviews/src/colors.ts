import { themeColor } from './dom';

/** VS Code's chart colors first (they follow the theme), then evenly spread hues for more runs. */
const CHART_VARIABLES = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'];
const FALLBACKS = ['#3794ff', '#d18616', '#89d185', '#b180d7', '#f14c4c', '#cca700'];

/** A run's color: stable for the run (its id), whichever runs are shown beside it. */
export function runColor(jobId: number): string {
  const slot = jobId % 16;
  if (slot < CHART_VARIABLES.length) return themeColor(CHART_VARIABLES[slot]!, FALLBACKS[slot]!);
  const hue = ((slot - CHART_VARIABLES.length) * 137.5) % 360;
  return `hsl(${hue} 65% ${document.body.classList.contains('vscode-light') ? 40 : 62}%)`;
}

/** An alias safe to hand to `ssh` as its destination argument: not an option, no spaces. */
export function isPlainAlias(alias: string): boolean {
  return alias !== '' && !alias.startsWith('-') && !/\s/.test(alias);
}

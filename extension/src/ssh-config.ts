/**
 * The concrete host aliases of an OpenSSH client config: the words of its `Host` lines, without
 * patterns (`*`, `?`, `!negated`), in the order written and each once. Deliberately minimal: no
 * `Match` blocks and no `Include`s, since an alias the user types still works (ssh resolves it).
 */
export function listSshAliases(configText: string): string[] {
  const aliases: string[] = [];
  for (const raw of configText.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    // `Host a b`, `Host=a`, `host  "a b"`: the keyword is case-insensitive and may take '='.
    const match = /^host(?:\s*=\s*|\s+)(.*)$/i.exec(line);
    if (!match) continue;
    for (const word of splitWords(match[1]!)) {
      // Patterns match many hosts, and a quoted name with spaces is no destination ssh takes.
      if (/[*?!\s]/.test(word) || word.startsWith('-') || aliases.includes(word)) continue;
      aliases.push(word);
    }
  }
  return aliases;
}

/** Whitespace-separated words, double quotes grouping; a trailing `# comment` ends the line. */
function splitWords(text: string): string[] {
  const words: string[] = [];
  for (const match of text.matchAll(/"([^"]*)"|(\S+)/g)) {
    if (match[2]?.startsWith('#')) break;
    const word = match[1] ?? match[2]!;
    if (word !== '') words.push(word);
  }
  return words;
}

/** An alias safe to hand to `ssh` as its destination argument: not an option, no spaces. */
export function isPlainAlias(alias: string): boolean {
  return alias !== '' && !alias.startsWith('-') && !/\s/.test(alias);
}

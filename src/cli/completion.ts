/**
 * `lb completion bash|zsh|fish`: shell completion generated from the command tree, so a new command or option
 * completes without anyone editing a script.
 */

/** What completes: the commands, for each command (the serving one under "") its options and words, and flags' values. */
export interface CompletionTree {
  commands: string[];
  /** Options (--port) and fixed words (backends' list, add…) by command; "" is `lb` itself. */
  words: Record<string, string[]>;
  /** Every flag that takes a value (--policy, -p), with the values it may take; [] for any (a port, a file). */
  values: Record<string, string[]>;
}

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

export function completionScript(shell: Shell, tree: CompletionTree): string {
  if (shell === "fish") return fishScript(tree);
  const bash = bashScript(tree);
  // zsh runs bash completion functions through bashcompinit.
  return shell === "zsh" ? `autoload -U +X bashcompinit && bashcompinit\n${bash}` : bash;
}

function bashScript({ commands, words, values }: CompletionTree): string {
  const cases = commands.map((command) => `    ${command}) words="${(words[command] ?? []).join(" ")}" ;;`).join("\n");
  // After a flag that takes a value, its value: one of its words, else nothing (the shell then completes file names).
  const flagCases = Object.entries(values)
    .map(([flag, choices]) => `    ${flag}) COMPREPLY=(${choices.length ? `$(compgen -W "${choices.join(" ")}" -- "$cur")` : ""}); return ;;`)
    .join("\n");
  return `# lb completion (bash): source <(lb completion bash)
_lb() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" words
  case "\${COMP_WORDS[COMP_CWORD-1]}" in
${flagCases}
  esac
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="${[...commands, ...(words[""] ?? [])].join(" ")}"
  else
    case "\${COMP_WORDS[1]}" in
${cases}
    *) words="${(words[""] ?? []).join(" ")}" ;;
    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _lb lb
`;
}

function fishScript({ commands, words, values }: CompletionTree): string {
  const lines = [`# lb completion (fish): lb completion fish | source`, `complete -c lb -f -n __fish_use_subcommand -a "${commands.join(" ")}"`];
  /** -r: the flag takes a value; -x -a: one of these words. */
  const valueOf = (flag: string) => (!values[flag] ? "" : values[flag].length ? ` -x -a "${values[flag].join(" ")}"` : " -r");
  const add = (condition: string, word: string) =>
    lines.push(word.startsWith("--") ? `complete -c lb -n "${condition}" -l ${word.slice(2)}${valueOf(word)}` : `complete -c lb -f -n "${condition}" -a ${word}`);
  for (const word of words[""] ?? []) add("__fish_use_subcommand", word);
  for (const command of commands) for (const word of words[command] ?? []) add(`__fish_seen_subcommand_from ${command}`, word);
  return `${lines.join("\n")}\n`;
}

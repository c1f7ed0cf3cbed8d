/**
 * `lb completion bash|zsh|fish`: shell completion generated from the command tree, so a new command or option
 * completes without anyone editing a script.
 */

/** What completes: the commands, and for each command (the serving one under "") its options and words. */
export interface CompletionTree {
  commands: string[];
  /** Options (--port) and fixed words (backends' list, add…) by command; "" is `lb` itself. */
  words: Record<string, string[]>;
}

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

export function completionScript(shell: Shell, tree: CompletionTree): string {
  if (shell === "fish") return fishScript(tree);
  const bash = bashScript(tree);
  // zsh runs bash completion functions through bashcompinit.
  return shell === "zsh" ? `autoload -U +X bashcompinit && bashcompinit\n${bash}` : bash;
}

function bashScript({ commands, words }: CompletionTree): string {
  const cases = commands.map((command) => `    ${command}) words="${(words[command] ?? []).join(" ")}" ;;`).join("\n");
  return `# lb completion (bash): source <(lb completion bash)
_lb() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" words
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

function fishScript({ commands, words }: CompletionTree): string {
  const lines = [`# lb completion (fish): lb completion fish | source`, `complete -c lb -f -n __fish_use_subcommand -a "${commands.join(" ")}"`];
  const add = (condition: string, word: string) =>
    lines.push(word.startsWith("--") ? `complete -c lb -n "${condition}" -l ${word.slice(2)}` : `complete -c lb -f -n "${condition}" -a ${word}`);
  for (const word of words[""] ?? []) add("__fish_use_subcommand", word);
  for (const command of commands) for (const word of words[command] ?? []) add(`__fish_seen_subcommand_from ${command}`, word);
  return `${lines.join("\n")}\n`;
}

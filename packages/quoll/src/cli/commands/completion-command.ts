import { Command, InvalidArgumentError } from 'commander';
import { COMPLETION_SHELLS, completionScript, type CompletionShell } from '../completion-script.js';

/** `quoll completion bash|zsh|fish`: prints the shell completion script of the whole command tree. */
export function completionCommand(root: () => Command): Command {
  return new Command('completion')
    .description(
      'Print a shell completion script: source <(quoll completion bash) (or zsh); fish: quoll completion fish > ~/.config/fish/completions/quoll.fish',
    )
    .argument('<shell>', COMPLETION_SHELLS.join(', '), (value: string): CompletionShell => {
      if (!(COMPLETION_SHELLS as readonly string[]).includes(value)) {
        throw new InvalidArgumentError(`give one of ${COMPLETION_SHELLS.join(', ')}.`);
      }
      return value as CompletionShell;
    })
    .action((shell: CompletionShell) => {
      process.stdout.write(completionScript(root(), shell));
    });
}

/* The `eval` subcommand (src/eval.c). */
#ifndef BLPO_EVAL_H
#define BLPO_EVAL_H

/* argv[1] is "eval"; returns the process exit code. */
int blpo_eval_main(int argc, char **argv);

#endif

"""What the vLLM parity tests share: the prompts, the reply budget, a reply as what parity compares
(token ids, text, stop), and the one-vector steering cases every engine (eager, compiled) must match."""

PROMPTS = [
    "What is the capital of France?",
    "Describe the tides in two sentences.",
    "Answer in French: give me a tip for learning to cook.",
]
NEW = 16

ONE_VECTOR_CASES = {  # name -> the specs one vector steers with
    "add": lambda f: [f.steer(15, 0.6)],
    "project": lambda f: [f.steer(12, mode="project")],
    "ablate": lambda f: [f.steer(6, mode="ablate")],
    "prompt_only": lambda f: [f.steer(15, 1.0, positions="prompt")],
    "generated_only": lambda f: [f.steer(15, 1.0, positions="generated")],
}


def replies(gens):
    return [(g.token_ids, g.text, g.stopped) for g in gens]

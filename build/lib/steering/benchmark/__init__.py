"""The evaluation layer: the only part of `steering` that may import `explain` (the report explains features).

    generation   sampled continuations, WikiText and continuation perplexity under interventions
    judges       toxicity and refusal judges, each with its held-out quality
    plots        the trade-off figures
    jailbreak    attack success and over-refusal (AdvBench, jailbreak templates, benign requests)
    runner       the steering benchmark: strengths chosen on dev, numbers on test, CIs, cache
    sweep        a plain AURA-family toxicity sweep
    report       the end-to-end report (`python -m steering.benchmark.report`)
"""

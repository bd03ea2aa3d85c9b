"""The evaluation layer, the top of the house: it may import `sae`, `steering` and `explain` (the report explains
features), and nothing imports it.

    generation   sampled continuations, WikiText and continuation perplexity under interventions
    concepts     the concept-steering data (AxBench-style concepts with their dev/test contexts)
    concept_bench  every method steering toward each concept, judged by MiniLM
    config / fits  the report's rows and how each is fitted
    frontier     the toxicity–fluency frontier over strengths
    judges       toxicity and refusal judges, each with its held-out quality
    plots        the trade-off figures
    jailbreak    attack success and over-refusal (AdvBench, jailbreak templates, benign requests)
    runner       the steering benchmark: strengths chosen on dev, numbers on test, CIs, cache
    sweep        a plain AURA-family toxicity sweep
    report       the end-to-end report (`python -m evaluation.report`)
"""

"""After training: how good is an SAE, and how sure are we?

    scores     per-unit separation scores (the one AUROC), all units at once
    stats      bootstrap CIs (rates, paired ratios, AUROC), design effect, detectable effect sizes
    tasks      the labelled evaluation tasks and their held-out parts
    probing    sparse probes and per-unit AUROC on pooled responses
    saebench   the whole evaluation (probes, AUROC, reconstruction) of one or more SAEs
    report     eval.json / eval.md / pareto.png; `python -m sae.eval`
    ship       write a trained SAE into data/pretrained/ with its evaluation (`python -m sae.eval.ship`)
"""

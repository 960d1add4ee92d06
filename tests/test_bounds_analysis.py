"""The bounds section's written answer follows the numbers (synthetic results)."""
import numpy as np
import pandas as pd

from probnn.analysis.bounds import bounds_answer, bounds_section, bounds_table
from probnn.tasks.bounds import Config, Result


def result(name, ais, elbo, local, iwae, k, bdmc_width=0.3, conditional=False):
    p = pd.DataFrame(dict(index=range(len(ais)), ais=ais, ais_se=0.1, elbo=elbo,
                          elbo_local=local, iwae_10=iwae, iwae_1000=iwae, pareto_k=k,
                          ais_ess=4.0, ais_acceptance=0.6))
    row = dict(images=len(ais), elbo=float(np.mean(elbo)), elbo_local=float(np.mean(local)),
               iwae_10=float(np.mean(iwae)), iwae_1000=float(np.mean(iwae)), ais=float(np.mean(ais)),
               ais_se=0.05, approximation_gap=float(np.mean(np.subtract(ais, local))),
               amortisation_gap=float(np.mean(np.subtract(local, elbo))),
               unreliable=float(np.mean(np.array(k) > 0.7)), bdmc_lower=-100.0,
               bdmc_upper=-100.0 + bdmc_width, bdmc_width=bdmc_width, bdmc_steps=100)
    bdmc = pd.DataFrame(dict(steps=[10, 100], lower=[-101.0, -100.0], upper=[-99.0, -99.7],
                             width=[2.0, bdmc_width]))
    return Result(name, p, bdmc, row, Config(), conditional)


def test_answer_reports_ranking_gap_split_and_pareto_k():
    ais = np.array([-100.0, -110.0, -90.0, -105.0])
    # vae-d20's IWAE falls 2 nats short of AIS on every image, vae-d4's 0.3: IWAE's margin
    # between them is 1.7 nats too small
    a = result("vae-d20", ais, ais - 6, ais - 2, ais - 2.0, [0.4, 0.5, 0.9, 1.2])
    b = result("vae-d4", ais - 5, ais - 9, ais - 5.5, ais - 5.3, [0.3, 0.4, 0.5, 0.6])
    c = result("cvae-d4", ais + 3, ais - 1, ais + 2, ais + 2.5, [0.3, 0.4, 0.5, 0.6],
               conditional=True)
    text = bounds_answer([a, b, c])
    assert ("AIS estimates log p(x) as vae-d20 -101.25 ± 0.05, vae-d4 -106.25 ± 0.05 (± the "
            "AIS estimate's own Monte Carlo error); and log p(x | y) as cvae-d4 -98.25.") in text
    assert "The ranking by IWAE-1000 is the same." in text
    assert ("vae-d20 beats vae-d4 by 5.00 ± 0.00 nats under AIS (paired over images), where "
            "IWAE-1000 says 3.30, off by -1.70 ± 0.00.") in text
    assert "cvae-d4 beats" not in text and "beats cvae-d4" not in text
    assert "vae-d20: the ELBO sits 6.00 ± " in text
    assert "nats below AIS, of which 4.00 is amortisation" in text
    assert "67% amortisation" in text
    assert ("flagged 2 of 12 estimates. Flagged ones sit on average 2.00 nats below AIS (100% "
            "more than 1 nat off); unflagged ones 0.72 nats") in text  # (2*2 + 4*0.3 + 4*0.5) / 10
    assert "BDMC" in text and "0.30 nats at T=100" in text
    s = bounds_section([a, b])
    assert [t.name for t in s.tables][:2] == ["bounds", "bounds-bdmc"]
    assert list(bounds_table([a, b]).index) == ["vae-d20", "vae-d4"]
    # a different order under IWAE is said
    d = result("vae-d4", ais - 5, ais - 9, ais - 5.5, ais + 1, [0.3, 0.4, 0.5, 0.6])
    assert "a different order" in bounds_answer([a, d])

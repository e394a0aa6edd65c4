"""Evaluation of dreams against held-out real episodes: PSNR/SSIM by horizon with baselines, controllability
(an inverse-dynamics model), camera response, and the report in words and pictures."""

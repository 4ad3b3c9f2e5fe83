"""Reviewing scores with readers: a reader's slice labels (`app.review.labels`), how runs and
readers agree (`app.review.agreement`), and the CLI's saliency and label outputs
(`app.review.headless`).  Qt-free; importing the package imports none of them."""

"""Photos, before they leave: is an image whole (`intact`), what is uploaded for it
(`preflight`), and the pure transform behind it (`shrink`).

Guarantees: nothing the API would refuse is uploaded (it is refused here, for free); an upload
carries the picture, upright, and no EXIF.
"""

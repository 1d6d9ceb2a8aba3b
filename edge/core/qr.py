"""QR codes for every capability: the modules (visitor passes, door-camera test frames) and a
small inline SVG (login codes on door screens and printed sheets, screen set-up links)."""

from __future__ import annotations


def qr_matrix(text: str, border: int = 4) -> list[list[bool]]:
    """The QR code's modules (quiet zone of ``border`` included), error correction M. Pass
    codes, door-screen and printed login codes all render from this."""
    import qrcode  # with Pillow (qrcode's image backends) ~4 MB RSS: loaded by the first code

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=border)
    qr.add_data(text)
    qr.make(fit=True)
    return qr.get_matrix()


def qr_svg(text: str, border: int = 2) -> str:
    """A QR code as a small inline SVG (one path, scales to any size with CSS)."""
    matrix = qr_matrix(text, border)
    n = len(matrix)
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                runs.append(f"M{start},{y}h{x - start}v1h{start - x}z")
            else:
                x += 1
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" '
        f'shape-rendering="crispEdges" class="qr"><rect width="{n}" height="{n}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )

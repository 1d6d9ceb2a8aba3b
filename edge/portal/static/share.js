// Visitor pass page: the phone's share sheet (WeChat, SMS...) sends the pass two ways:
// "发送链接" the visitor's link (/r/v/<token>: PIN and QR without a login, until the pass ends)
// with the PIN in the text; "发送图片" the QR code as an image with the PIN in the text (where
// files cannot be shared, the text alone). Without a share sheet both stay hidden and the
// link on the page and "保存二维码图片" remain.
"use strict";
(function () {
  const card = document.getElementById("pass");
  const btnImage = document.getElementById("share"), btnLink = document.getElementById("share-link");
  if (!card || !navigator.share) return;
  const text = card.dataset.share, title = card.dataset.title, url = card.dataset.url;
  async function share(data, kind) {
    try {
      await navigator.share(data);
      document.body.dataset.shared = kind;
    } catch { /* the resident closed the share sheet */ }
  }
  if (btnLink && url) {
    btnLink.hidden = false;
    btnLink.addEventListener("click", () => share({title, text, url}, "link"));
  }
  if (btnImage) {
    btnImage.hidden = false;
    btnImage.addEventListener("click", () => {
      const data = {title, text};
      try {
        // The QR is a data: URL; decoded here, as the CSP (connect-src 'self') bars fetch().
        const b64 = document.getElementById("pass-qr").src.split(",", 2)[1];
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const file = new File([bytes], `${title}.png`, {type: "image/png"});
        if (navigator.canShare && navigator.canShare({files: [file]})) data.files = [file];
      } catch { /* the text alone still carries the PIN */ }
      share(data, data.files ? "image" : "text");
    });
  }
})();

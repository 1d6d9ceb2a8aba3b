// Visitor pass page: "发给访客" opens the phone's share sheet (WeChat, SMS...) with the QR code
// as an image and the PIN in the text; where files cannot be shared, the text alone; without
// a share sheet the button stays hidden and "保存二维码图片" remains.
"use strict";
(function () {
  const card = document.getElementById("pass"), btn = document.getElementById("share");
  if (!card || !btn || !navigator.share) return;
  const text = card.dataset.share, title = card.dataset.title;
  btn.hidden = false;
  btn.addEventListener("click", async () => {
    const data = {title, text};
    try {
      // The QR is a data: URL; decoded here, as the CSP (connect-src 'self') bars fetch().
      const b64 = document.getElementById("pass-qr").src.split(",", 2)[1];
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const file = new File([bytes], `${title}.png`, {type: "image/png"});
      if (navigator.canShare && navigator.canShare({files: [file]})) data.files = [file];
    } catch { /* the text alone still carries the PIN */ }
    try {
      await navigator.share(data);
      document.body.dataset.shared = data.files ? "image" : "text";
    } catch { /* the resident closed the share sheet */ }
  });
})();

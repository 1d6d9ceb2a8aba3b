// The installer page's script (a file, not inline: the box's pages send a CSP without
// 'unsafe-inline' for scripts). Buttons name their action in data-click.
const T={zh:{},en:{title:"Qilu Edge box · Installer",token_h:"Sign in",token:"Access token",use:"Sign in",
signed_in:"Signed in",sign_out:"Sign out",badtoken:"Wrong token: check the one install.sh printed",
mb_host:"Host",mb_port:"Port",
token_hint:"The token install.sh printed ([[api.tokens]] in edge.toml)",setup_h:"1. Basic setup",
box_id:"Box id",community:"Community id",name:"Name",cloud_url:"Cloud URL",claim:"Claim code",
validate:"Validate",save:"Save",force:"Replace an existing registration",provision:"Provision to the cloud",
provisioned:"Provisioned as ",notprov:"Not provisioned yet",devices_h:"2. Find devices (Modbus relay boards)",units:"Unit ids",
scan:"Scan",accept_hint:"Tick the ones to add, then press Save",configured:"Configured devices",
doctor_h:"3. Commissioning checks",click:"Click each door relay (audible)",run:"Run checks",
saved:"Saved. Restart the daemon to apply: systemctl restart qilu-edge",valid:"Valid",
running:"Running: ",ready:"READY",notready:"NOT READY",none:"No unit answered",
pass:"PASS",warn:"WARN",fail:"FAIL",skip:"SKIP"}};
document.querySelectorAll("[data-i18n]").forEach(e=>T.zh[e.dataset.i18n]=e.textContent);
Object.assign(T.zh,{badtoken:"令牌不对：请核对 install.sh 打印的令牌",saved:"已保存。重启服务后生效：systemctl restart qilu-edge",valid:"校验通过",
running:"正在检查：",provisioned:"已注册为 ",notprov:"尚未注册到云端",ready:"可以交付",notready:"未就绪",none:"没有设备应答",
pass:"通过",warn:"警告",fail:"失败",skip:"跳过"});
let lang=localStorage.getItem("lang")||"zh";
function t(k){return (T[lang]&&T[lang][k])||T.zh[k]||k}
function setLang(l){lang=l;localStorage.setItem("lang",l);
 document.querySelectorAll("[data-i18n]").forEach(e=>e.textContent=t(e.dataset.i18n));
 if(last)report(last);if(prov!==undefined)showProv(prov);return false}
function hdr(){return {"Authorization":"Bearer "+(localStorage.getItem("token")||""),
 "Content-Type":"application/json"}}
// Sign in with the staff token, typed into the form: never in the address (it would stay in
// the browser history, in server logs and in a screenshot of the address bar).
async function signIn(ev){ev.preventDefault();const tok=document.getElementById("token").value.trim();
 localStorage.setItem("token",tok);document.getElementById("token").value="";
 const ok=await load();if(!ok){localStorage.removeItem("token");document.getElementById("setup_msg").textContent="";
 document.getElementById("signin_msg").innerHTML=`<span class="err">${esc(t("badtoken"))}</span>`}}
function signOut(){localStorage.removeItem("token");signedIn(false);return false}
function signedIn(yes){document.getElementById("signin").hidden=yes;document.getElementById("signed").hidden=!yes;
 if(yes)document.getElementById("signin_msg").textContent=""}
function esc(s){return String(s??"").replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]))}
// The box answers errors in the page's language (Accept-Language) and sends both texts.
// Doctor check titles are "English / 中文": the page's language half.
function titleOf(x){const p=String(x||"").split(" / ");return p.length===2?p[lang==="en"?0:1]:x}
// Each doctor result carries detail and hint in both languages: a switch re-renders at once.
function inLang(r,k){return r[k+"_"+(lang==="en"?"en":"zh")]??r[k]??""}
function errText(e){return (lang==="en"?e.error_en:e.error_zh)||e.error||""}
async function api(method,path,body){const r=await fetch("/api/v1/installer/"+path,
 {method,headers:{...hdr(),"Accept-Language":lang==="en"?"en":"zh-CN"},body:body?JSON.stringify(body):undefined});
 const j=await r.json().catch(()=>({error:r.statusText}));if(!r.ok)throw j;return j}
let found=[];
async function load(){try{const s=await api("GET","setup");signedIn(true);
 document.getElementById("setup_msg").textContent="";
 for(const k of ["box_id","community","name","cloud_url"])document.getElementById(k).value=s[k]??"";
 showProv(s.provisioned);
 document.getElementById("devices").innerHTML=s.devices.map(d=>
  `<tr><td>${esc(d.kind)}</td><td>${esc(d.id)}</td><td>${esc(d.type)}</td><td>${esc(d.name)}</td></tr>`).join("");
return true}catch(e){document.getElementById("setup_msg").innerHTML=`<span class=err>${esc(errText(e))}</span>`;return false}}
let prov;
function showProv(p){prov=p;document.getElementById("prov_msg").innerHTML=p?
 `<span class=ok>${t("provisioned")}${esc(p.box_id)} · ${esc(p.area_path)} · ${esc(p.cloud_url)}</span>`:
 `<span class=hint>${t("notprov")}</span>`}
async function provision(){const m=document.getElementById("prov_msg");
 try{showProv(await api("POST","provision",{cloud_url:cloud_url.value,claim_code:claim_code.value,
  name:document.getElementById("name").value,force:document.getElementById("force").checked}));claim_code.value=""}
 catch(e){m.innerHTML=`<span class=err>${esc(errText(e))}</span>`;
  const el=document.getElementById(e.field);if(el)el.focus()}}
function wizard(){const w={};for(const k of ["box_id","community","name"])
 w[k]=document.getElementById(k).value;
 w.devices=found.filter((f,i)=>document.getElementById("acc"+i)?.checked).map(f=>f.device);return w}
async function setup(save){const m=document.getElementById("setup_msg");
 try{await api("POST",save?"setup":"setup/validate",wizard());
  m.innerHTML=`<span class=ok>${t(save?"saved":"valid")}</span>`;if(save){found=[];showFound()}}
 catch(e){m.innerHTML=`<span class=err>${esc(e.field&&!errText(e).includes(e.field)?e.field+": ":"")}${esc(errText(e))}</span>`;
  if(e.field){const el=document.getElementById(e.field.split(".").pop());if(el)el.focus()}}}
function showFound(){document.getElementById("found").innerHTML=found.length?found.map((f,i)=>
 `<tr><td><input type=checkbox id=acc${i} style="width:auto"></td><td>unit ${f.unit}</td><td>${esc(f.detail)}</td>
 <td><pre>${esc(f.snippet)}</pre></td></tr>`).join(""):`<tr><td>${t("none")}</td></tr>`}
async function scan(){try{found=await api("POST","modbus-scan",{host:mb_host.value,
 port:+mb_port.value,units:mb_units.value});showFound()}
 catch(e){document.getElementById("found").innerHTML=`<tr><td class=err>${esc(errText(e))}</td></tr>`}}
async function doctor(){try{await api("POST","doctor",{click:document.getElementById("click").checked})}
 catch(e){if(!e.busy){alert(errText(e));return}}poll()}
let last=null;
async function poll(){const s=await api("GET","doctor");last=s;report(s);if(s.running)setTimeout(poll,400)}
function report(s){const p=document.getElementById("prog");
 p.max=s.total||1;p.value=s.done;
 document.getElementById("current").textContent=s.running&&s.current?t("running")+titleOf(s.current):"";
 document.getElementById("report").innerHTML=s.results.map(r=>{const hint=inLang(r,"hint");
  return `<tr><td class=${r.status}>${esc(t(r.status))}</td><td>${esc(inLang(r,"title"))}</td><td>${esc(inLang(r,"detail"))}`+
  `${hint&&r.status!="pass"?`<div class=hint>→ ${esc(hint)}</div>`:""}</td></tr>`}).join("");
 const v=document.getElementById("verdict");
 v.innerHTML=s.running?"":(s.ok===undefined?"":(s.ok?`<h3 class=pass>${t("ready")}</h3>`:`<h3 class=fail>${t("notready")}</h3>`))}
const q=new URLSearchParams(location.search);
if(q.get("token"))history.replaceState(null,"",location.pathname)  // never taken from the address
if(q.get("lang"))lang=q.get("lang");
setLang(lang);document.getElementById("signin-form").addEventListener("submit",signIn);
if(localStorage.getItem("token")){load().then(ok=>{if(ok)poll().catch(()=>{});else signedIn(false)})}
const ACTIONS={"lang:zh":()=>setLang("zh"),"lang:en":()=>setLang("en"),signOut:()=>signOut(),
 provision:()=>provision(),validate:()=>setup(false),save:()=>setup(true),scan:()=>scan(),
 doctor:()=>doctor()};
document.querySelectorAll("[data-click]").forEach(el=>el.addEventListener("click",ev=>{
 ev.preventDefault();ACTIONS[el.dataset.click]()}));
